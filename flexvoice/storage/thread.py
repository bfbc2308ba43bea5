"""A store's statements off the event loop where they are network round trips.

On SQLite a statement is microseconds of CPU: it runs where it is asked, on the loop. On
PostgreSQL each one waits for the server (about 1 ms on loopback, more on a busy machine):
they run in one thread of the store's own, which alone uses its connection, in the order
they were asked (one connection carries one transaction at a time).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import TypeVar

from flexvoice.storage.engine import Connection, is_postgres

T = TypeVar("T")


class StoreThread:
    def __init__(self, conn: Connection, name: str):
        self._thread = (
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"flexvoice-{name}-db")
            if is_postgres(conn)
            else None
        )

    @property
    def off_loop(self) -> bool:
        return self._thread is not None

    async def run(self, fn: Callable[[], T]) -> T:
        if self._thread is None:
            return fn()
        return await self.start(fn)

    def start(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """`fn` started in the thread (only when off_loop); RuntimeError once closed."""
        assert self._thread is not None
        return asyncio.get_running_loop().run_in_executor(self._thread, fn)

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)

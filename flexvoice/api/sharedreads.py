"""The shared store's reads made for every request (the API key and its account, the
designer's session), done where they cost the event loop least.

On SQLite they run on the event loop: a read is microseconds. On PostgreSQL each statement is
a network round trip (about 1 ms on loopback, several when the machine is busy), and the
loop's one connection also carries the calls' writes: the reads run in a worker thread on a
connection of the node's small pool (flexvoice/storage/postgres.py PgPool) instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flexvoice.appkeys import SHARED_DB, SHARED_POOL
from flexvoice.storage.engine import Connection

R = TypeVar("R")


async def read_shared(app: Mapping[Any, Any], work: Callable[[Connection], R]) -> R:
    """`work(conn)` on the shared store: on the loop (SQLite) or off it (PostgreSQL)."""
    pool = app.get(SHARED_POOL)
    if pool is None:
        return work(app[SHARED_DB])

    def run() -> R:
        with pool.connection() as conn:
            return work(conn)

    return await asyncio.to_thread(run)

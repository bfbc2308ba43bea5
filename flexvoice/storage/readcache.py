"""Rows read on every call (a number's route, an account's tariff) kept in memory while the
store has not changed, so a call does not query for what the previous call just read.

When a cached row may have changed, the cache is emptied:
- a write made by this process through the module that owns the row (numbers, accounts)
  calls `changed()`;
- on SQLite, `PRAGMA data_version` (one cheap statement, no table read) tells when another
  connection committed: the command line (`flexvoice accounts suspend ...`), another
  process, the usage importer's thread;
- on PostgreSQL, shared by several nodes that cannot tell each other, an entry lives at most
  `ttl` seconds (one second): a change made on another node applies to calls within it.
The `ttl` also bounds what a write that forgot `changed()` could leave stale.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from flexvoice.storage.engine import Connection, is_postgres

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

TTL_SECONDS = 1.0
MAX_ENTRIES = 10_000  # numbers called, accounts priced: emptied when full

_generation = 0


def changed() -> None:
    """Rows a cache may hold were written by this process: every cache is emptied."""
    global _generation
    _generation += 1


class ReadCache(Generic[K, V]):
    """`get(key, load)`: `load(key)`'s answer, from memory while it may be trusted."""

    def __init__(
        self,
        conn: Connection,
        *,
        ttl: float = TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.conn = conn
        self.ttl = ttl
        self.clock = clock
        self._values: dict[K, tuple[float, V]] = {}
        self._seen: tuple[int, int] = (-1, -1)
        self.hits = self.misses = 0

    def get(self, key: K, load: Callable[[K], V]) -> V:
        version = self._version()
        if version != self._seen:
            self._values.clear()
            self._seen = version
        now = self.clock()
        found = self._values.get(key)
        if found is not None and found[0] > now:
            self.hits += 1
            return found[1]
        self.misses += 1
        value = load(key)
        if len(self._values) >= MAX_ENTRIES:
            self._values.clear()
        self._values[key] = (now + self.ttl, value)
        return value

    def clear(self) -> None:
        self._values.clear()

    def _version(self) -> tuple[int, int]:
        if is_postgres(self.conn):
            return _generation, 0
        row = self.conn.execute("PRAGMA data_version").fetchone()
        return _generation, int(row[0])

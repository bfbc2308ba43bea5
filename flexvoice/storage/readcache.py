"""Rows read on every call (a number's route, an account's tariff) kept in memory while the
store has not changed, so a call does not query for what the previous call just read.

When a cached row may have changed, the cache is emptied:
- a write made by this process through the module that owns the row (numbers, accounts)
  calls `changed()`;
- on SQLite, `PRAGMA data_version` (a statement that reads no table, asked at most every
  `CHECK_SECONDS`) tells when another connection committed: the command line (`flexvoice
  accounts suspend ...`), another process, the usage importer's thread;
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
CHECK_SECONDS = 0.05  # a change made elsewhere on one node applies to calls within this
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
        self._generation = -1
        self._data_version = -1
        self._checked = float("-inf")
        self.hits = self.misses = 0

    def get(self, key: K, load: Callable[[K], V]) -> V:
        found = self._kept(key)
        if found is not None:
            return found[1]
        value = load(key)
        self.put(key, value)
        return value

    def peek(self, key: K) -> V | None:
        """The kept value, or None when there is none to trust (then load it, e.g. off the
        event loop, and `put` it; a kept None reads as none)."""
        found = self._kept(key)
        return found[1] if found is not None else None

    def _kept(self, key: K) -> tuple[float, V] | None:
        now = self.clock()
        elsewhere = self._changed_elsewhere(now)
        if elsewhere or self._generation != _generation:
            self._values.clear()
            self._generation = _generation
        found = self._values.get(key)
        if found is not None and found[0] > now:
            self.hits += 1
            return found
        self.misses += 1
        return None

    def put(self, key: K, value: V) -> None:
        if len(self._values) >= MAX_ENTRIES:
            self._values.clear()
        self._values[key] = (self.clock() + self.ttl, value)

    def clear(self) -> None:
        self._values.clear()

    def unseen_for(self) -> float:
        """At most how long `get` keeps answering a row another process changed: the next
        `data_version` check on SQLite, an entry's `ttl` on PostgreSQL."""
        return self.ttl if is_postgres(self.conn) else min(CHECK_SECONDS, self.ttl)

    def _changed_elsewhere(self, now: float) -> bool:
        if is_postgres(self.conn) or now - self._checked < CHECK_SECONDS:
            return False
        self._checked = now
        version = int(self.conn.execute("PRAGMA data_version").fetchone()[0])
        changed = version != self._data_version and self._data_version != -1
        self._data_version = version
        return changed

"""The collector: each call the registry says ended goes into the rollups, exactly once.

Calls are added in batches (on a node: up to BATCH calls or MAX_DELAY seconds, whichever comes
first; a question over the API flushes the batch before it reads). One transaction per batch
instead of one per call: the hour, day and day-quarter rows of a batch's calls mostly coincide,
so they are added up in memory and written once, and the commit - most of a call's cost when
each call had its own - is shared by the batch.

Exactly once: a batch's calls go into `stats_applied` in the same transaction as their rows,
and a call already there (or already in the batch) is skipped. A batch lost with its process
was never committed: its calls are not in `stats_applied`, so the catch-up at the next start
adds them from the call registry, like any call that ended while the node was going down.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from flexvoice.clock import utc_now
from flexvoice.logs import get_logger
from flexvoice.statistics.facts import CallFacts, CallLike, call_facts, is_own_call
from flexvoice.statistics.rollup import CallSource, Rows, add_to, ensure_schema, write_rows
from flexvoice.storage.engine import Connection

log = get_logger(__name__)

BATCH = 200  # calls: a node writes at least every this many ended calls ...
MAX_DELAY = 1.0  # ... or this many seconds after the oldest call waiting


class Collector:
    """Adds each call to the rollups when the call registry says it ended (a registry
    listener), exactly once, in the registry's own database. `batch` 1 writes each call as it
    ends (the default: tests and tools see the rows at once); a node uses BATCH and flushes at
    least every MAX_DELAY seconds (flexvoice.statistics.service)."""

    CATCH_UP_DAYS = 7

    def __init__(
        self,
        conn: sqlite3.Connection,
        source: CallSource,
        *,
        clock: Callable[[], datetime] = utc_now,
        on_added: Sequence[Callable[[CallFacts, float], None]] = (),
        batch: int = 1,
        max_delay: float = MAX_DELAY,
        timer: Callable[[], float] = time.monotonic,
        calls_db: Connection | None = None,
        node: str | None = None,
    ):
        self.conn = conn
        # The registry's own store when it is not this one (PostgreSQL shared by several
        # nodes, the rollups in this node's file): the catch-up reads this node's calls there.
        self.calls_db = calls_db if calls_db is not None else conn
        self.node = node if calls_db is not None else None
        self.source = source
        self.clock = clock
        self.on_added = list(on_added)
        self.batch = max(1, batch)
        self.max_delay = max_delay
        self.timer = timer
        # Calls waiting for the next write: facts, end (for the ledger), seconds spent on them.
        self.pending: list[tuple[CallFacts, str, float]] = []
        self._pending_ids: set[str] = set()
        self._oldest = 0.0
        ensure_schema(conn)
        # The catch-up finds recently ended calls by their end; the registry keeps no index
        # on it. IF NOT EXISTS: the registry's own migrations may rebuild its table.
        self.calls_db.execute("CREATE INDEX IF NOT EXISTS stats_calls_ended_at ON calls (ended_at)")

    def listener(
        self, call_id: str, call: CallLike | None, kind: str, data: dict[str, object]
    ) -> None:
        """flexvoice.calls.CallListener: a call that just ended is added."""
        if kind != "ended" or call is None or call.ended_at is None:
            return
        self.add_call(call)

    def add_call(self, call: CallLike) -> bool:
        """Take an ended call (its trace read from the registry); False when it was taken
        before or is not a call of its own (a dialled leg)."""
        if call.ended_at is None or not is_own_call(call) or self._taken(call.id):
            return False
        t0 = time.perf_counter()
        facts = call_facts(call, self.source.events(call.id))
        return self.add(facts, call.ended_at, time.perf_counter() - t0)

    def add(self, facts: CallFacts, ended_at: str, spent: float = 0.0) -> bool:
        """Take one call's facts unless they were taken before; True when taken. Written now
        when the batch is full or its oldest call waited `max_delay`."""
        if self._taken(facts.call_id):
            return False
        if not self.pending:
            self._oldest = self.timer()
        self.pending.append((facts, ended_at, spent))
        self._pending_ids.add(facts.call_id)
        if len(self.pending) >= self.batch or self.timer() - self._oldest >= self.max_delay:
            self.flush()
        return True

    def _taken(self, call_id: str) -> bool:
        if call_id in self._pending_ids:
            return True
        row = self.conn.execute("SELECT 1 FROM stats_applied WHERE call_id = ?", (call_id,))
        return row.fetchone() is not None

    def due(self) -> bool:
        return bool(self.pending) and self.timer() - self._oldest >= self.max_delay

    def flush(self) -> int:
        """Write the waiting calls in one transaction; the number written. On an error they
        stay waiting (the next flush tries again) and the error is raised."""
        if not self.pending:
            return 0
        batch = self.pending
        t0 = time.perf_counter()
        rows: Rows = {}
        for facts, _, _ in batch:
            add_to(rows, facts)
        self.conn.execute("SAVEPOINT stats_add")
        try:
            self.conn.executemany(
                "INSERT INTO stats_applied (call_id, ended_at) VALUES (?, ?)",
                [(facts.call_id, ended_at) for facts, ended_at, _ in batch],
            )
            write_rows(self.conn, rows)
            self.conn.execute("RELEASE stats_add")
        except sqlite3.IntegrityError:
            # Another writer of this database added one of these calls since it was taken
            # (`flexvoice statistics` tools): write them one by one, skipping it.
            self.conn.execute("ROLLBACK TO stats_add")
            self.conn.execute("RELEASE stats_add")
            batch = [b for b in batch if self._write_one(b[0], b[1])]
        except BaseException:
            self.conn.execute("ROLLBACK TO stats_add")
            self.conn.execute("RELEASE stats_add")
            raise
        self.pending, self._pending_ids = [], set()
        share = (time.perf_counter() - t0) / max(1, len(batch))
        for facts, _, spent in batch:
            for hook in self.on_added:
                hook(facts, spent + share)
        return len(batch)

    def _write_one(self, facts: CallFacts, ended_at: str) -> bool:
        rows: Rows = {}
        add_to(rows, facts)
        self.conn.execute("SAVEPOINT stats_one")
        try:
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO stats_applied (call_id, ended_at) VALUES (?, ?)",
                (facts.call_id, ended_at),
            )
            if cur.rowcount:
                write_rows(self.conn, rows)
            self.conn.execute("RELEASE stats_one")
        except BaseException:
            self.conn.execute("ROLLBACK TO stats_one")
            self.conn.execute("RELEASE stats_one")
            raise
        return bool(cur.rowcount)

    def catch_up(self) -> int:
        """Add the calls that ended in the last CATCH_UP_DAYS days and were never added (the
        node stopped between a call's end and its rollup); forget older ledger entries."""
        since = (self.clock() - timedelta(days=self.CATCH_UP_DAYS)).isoformat()
        if self.calls_db is self.conn:
            missing = [
                r[0]
                for r in self.conn.execute(
                    "SELECT c.id FROM calls c WHERE c.ended_at >= ? AND NOT EXISTS"
                    " (SELECT 1 FROM stats_applied a WHERE a.call_id = c.id)",
                    (since,),
                )
            ]
        else:  # two databases: this node's calls there, minus those added here
            ended = self.calls_db.execute(
                "SELECT id FROM calls WHERE ended_at >= ? AND node = ?", (since, self.node)
            ).fetchall()
            added_ids = {
                r[0]
                for r in self.conn.execute(
                    "SELECT call_id FROM stats_applied WHERE ended_at >= ?", (since,)
                )
            }
            missing = [r[0] for r in ended if r[0] not in added_ids]
        added = 0
        for call_id in missing:
            call = self.source.get(call_id)
            if call is not None and self.add_call(call):
                added += 1
        self.flush()
        forget = (self.clock() - timedelta(days=self.CATCH_UP_DAYS + 1)).isoformat()
        self.conn.execute("DELETE FROM stats_applied WHERE ended_at < ?", (forget,))
        if added:
            log.info("statistics.caught_up", calls=added)
        return added

"""The collector: each call the registry says ended goes into the rollups, exactly once.

Calls are added in batches (on a node: up to BATCH calls or MAX_DELAY seconds, whichever comes
first; a question over the API flushes the batch before it reads). One transaction per batch
instead of one per call: the hour, day and day-quarter rows of a batch's calls mostly coincide,
so they are added up in memory and written once, and the commit - most of a call's cost when
each call had its own - is shared by the batch.

Exactly once: the rollups live in the store the call registry uses (one node's SQLite file,
or PostgreSQL shared by several nodes). A batch's calls are noted in `stats_applied` in the
same transaction as their rows, and only the calls noted now - not those another writer
noted first (another node's catch-up, a `flexvoice statistics rebuild`) - add rows. Writers
take turns: SQLite's write lock, an advisory lock on PostgreSQL. A batch lost with its
process was never committed: its calls are not in `stats_applied`, so the catch-up at the next
start adds them from the call registry, like any call that ended while the node was going down.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from flexvoice.clock import utc_now
from flexvoice.logs import get_logger
from flexvoice.statistics.facts import CallFacts, CallLike, call_facts, is_own_call
from flexvoice.statistics.rollup import CallSource, Rows, add_to, ensure_schema, write_rows
from flexvoice.storage.engine import Connection, is_postgres, lock_key, settle, write_transaction

log = get_logger(__name__)

BATCH = 200  # calls: a node writes at least every this many ended calls ...
MAX_DELAY = 1.0  # ... or this many seconds after the oldest call waiting
LOCK = "flexvoice.statistics"  # the rollups' writers take turns under it (PostgreSQL)
CLAIM_ROWS = 500  # calls noted per statement (SQLite allows 32,766 parameters)


@contextmanager
def writing(conn: Connection) -> Iterator[None]:
    """One write of the rollups and their ledger, all or nothing: a transaction of its own, or
    a savepoint inside the one open (the registry's, when a call's end fills the batch). The
    writers of every node take turns: SQLite's write lock, PostgreSQL's advisory lock."""
    settle()  # the loop's group of writes, unless this runs inside one of its writes
    if not conn.in_transaction:
        with write_transaction(conn, LOCK):
            yield
        return
    conn.execute("SAVEPOINT stats_write")
    try:
        if is_postgres(conn):
            conn.execute("SELECT pg_advisory_xact_lock(?)", (lock_key(LOCK),))
        yield
        conn.execute("RELEASE stats_write")
    except BaseException:
        conn.execute("ROLLBACK TO stats_write")
        conn.execute("RELEASE stats_write")
        raise


def claim(conn: Connection, calls: Sequence[tuple[str, str]]) -> set[str]:
    """Note calls (id, end) as counted, inside `writing`; the ids noted now. A call noted
    before is left as it is: its rows were added by whoever noted it, and must not be again."""
    new: set[str] = set()
    for i in range(0, len(calls), CLAIM_ROWS):
        part = calls[i : i + CLAIM_ROWS]
        marks = ", ".join("(?, ?)" for _ in part)
        cur = conn.execute(
            f"INSERT INTO stats_applied (call_id, ended_at) VALUES {marks}"
            " ON CONFLICT (call_id) DO NOTHING RETURNING call_id",
            [value for call in part for value in call],
        )
        new.update(str(r[0]) for r in cur.fetchall())
    return new


class Collector:
    """Adds each call to the rollups when the call registry says it ended (a registry
    listener), exactly once, in the registry's own store. `batch` 1 writes each call as it
    ends (the default: tests and tools see the rows at once); a node uses BATCH and flushes at
    least every MAX_DELAY seconds (flexvoice.statistics.service)."""

    CATCH_UP_DAYS = 7

    def __init__(
        self,
        conn: Connection,
        source: CallSource,
        *,
        clock: Callable[[], datetime] = utc_now,
        on_added: Sequence[Callable[[CallFacts, float], None]] = (),
        batch: int = 1,
        max_delay: float = MAX_DELAY,
        timer: Callable[[], float] = time.monotonic,
    ):
        self.conn = conn
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
        self.written = 0  # calls this collector added to the rollups
        # The catch-up finds recently ended calls by their end: the call registry's
        # migrations index them (flexvoice.callrecords).
        ensure_schema(conn)

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
        self._queue(facts, call.ended_at, time.perf_counter() - t0)
        return True

    def add(self, facts: CallFacts, ended_at: str, spent: float = 0.0) -> bool:
        """Take one call's facts unless they were taken before; True when taken. Written now
        when the batch is full or its oldest call waited `max_delay`."""
        if self._taken(facts.call_id):
            return False
        self._queue(facts, ended_at, spent)
        return True

    def _queue(self, facts: CallFacts, ended_at: str, spent: float) -> None:
        if not self.pending:
            self._oldest = self.timer()
        self.pending.append((facts, ended_at, spent))
        self._pending_ids.add(facts.call_id)
        if len(self.pending) >= self.batch or self.timer() - self._oldest >= self.max_delay:
            self.flush()

    def _taken(self, call_id: str) -> bool:
        if call_id in self._pending_ids:
            return True
        row = self.conn.execute("SELECT 1 FROM stats_applied WHERE call_id = ?", (call_id,))
        return row.fetchone() is not None

    def due(self) -> bool:
        return bool(self.pending) and self.timer() - self._oldest >= self.max_delay

    def flush(self) -> int:
        """Write the waiting calls in one transaction; the number added (a call another writer
        added first is not added again). On an error they stay waiting (the next flush tries
        again) and the error is raised."""
        if not self.pending:
            return 0
        batch = self.pending
        t0 = time.perf_counter()
        with writing(self.conn):
            new = claim(self.conn, [(facts.call_id, ended_at) for facts, ended_at, _ in batch])
            batch = [b for b in batch if b[0].call_id in new]
            rows: Rows = {}
            for facts, _, _ in batch:
                add_to(rows, facts)
            write_rows(self.conn, rows)
        self.pending, self._pending_ids = [], set()
        self.written += len(batch)
        share = (time.perf_counter() - t0) / max(1, len(batch))
        for facts, _, spent in batch:
            for hook in self.on_added:
                hook(facts, spent + share)
        return len(batch)

    def catch_up(self) -> int:
        """Add the calls that ended in the last CATCH_UP_DAYS days and were never added (the
        node stopped between a call's end and its rollup); forget older ledger entries."""
        since = (self.clock() - timedelta(days=self.CATCH_UP_DAYS)).isoformat()
        # Every node's calls: in a shared store a node that stopped for good leaves its last
        # calls to the others; a call a running node still holds in its batch counts once
        # (`claim`), whoever writes it first.
        missing = [
            r[0]
            for r in self.conn.execute(
                "SELECT c.id FROM calls c WHERE c.ended_at >= ? AND NOT EXISTS"
                " (SELECT 1 FROM stats_applied a WHERE a.call_id = c.id)",
                (since,),
            ).fetchall()
        ]
        before = self.written
        for call_id in missing:
            call = self.source.get(call_id)
            if call is not None:
                self.add_call(call)
        self.flush()
        added = self.written - before
        forget = (self.clock() - timedelta(days=self.CATCH_UP_DAYS + 1)).isoformat()
        self.conn.execute("DELETE FROM stats_applied WHERE ended_at < ?", (forget,))
        if added:
            log.info("statistics.caught_up", calls=added)
        return added

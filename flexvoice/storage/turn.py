"""Group commit on the event loop's SQLite connection: the writes of one turn of the loop in
one transaction.

A call's life is five or six short writes on the loop (created, answered, its steps, ended,
its live-leg row): one transaction each cost a BEGIN IMMEDIATE and a COMMIT apiece, and each
COMMIT wrote every page the write touched to the WAL again (28 pages a call). Under load the
loop handles several workers' events in one turn; their writes share one transaction here:
each a SAVEPOINT of its own (one write that fails is undone alone), the whole committed by a
callback the first write schedules with `call_soon`, which asyncio runs at the start of the
next turn, before it reads any new I/O.

What a crash of the control plane can lose is the turn in progress (a millisecond or so of
events, before anything waited on them outside the loop): a writer that must be durable
before it acts calls `settle()` (flexvoice.storage.engine.settle), and every writer that opens
a transaction of its own settles first, whichever its connection to the file (SQLite nests
none, and another connection on the loop's thread would wait for the lock the group holds).
On PostgreSQL, or with no event loop running (a command, a test calling in directly), a
write is a transaction of its own, as before.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prometheus_client import Counter

from flexvoice.logs import get_logger
from flexvoice.storage.engine import OPEN_GROUPS, Connection, is_postgres
from flexvoice.storage.sqlite import SqliteConnection

log = get_logger(__name__)

GROUP_COMMITS = Counter(
    "flexvoice_sqlite_group_commits",
    "Commits of the writes of one event-loop turn on the node's SQLite connection",
)
GROUP_WRITES = Counter(
    "flexvoice_sqlite_group_writes",
    "Writes (call events, live-leg rows) committed in a turn's group; divided by the commits: "
    "writes per commit",
)


class TurnCommit:
    """The open group of one connection (one per connection: `for_connection`)."""

    def __init__(self, conn: SqliteConnection):
        self.conn = conn
        self.open = False
        self.depth = 0  # writes in progress: the group commits only between writes
        self._undo: list[Callable[[], None]] = []  # told if the group's COMMIT fails
        self._writes = 0

    @contextmanager
    def write(self, undo: Callable[[], None] | None = None) -> Iterator[None]:
        """One write: a savepoint in the turn's transaction (opened by the first write of the
        turn). `undo` is called if the write, or later its group, is rolled back."""
        if not self.open and self.conn.in_transaction:
            # Inside a transaction somebody else opened (a start-up's close of lost calls):
            # its part, committed or undone with it, as before.
            yield
            return
        if not self.open:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is None:
                with one_write(self.conn, None, undo):
                    yield
                return
            self.conn.execute("BEGIN IMMEDIATE")
            self.open = True
            OPEN_GROUPS.commits.append(self.commit)
            loop.call_soon(self.commit)
        self.conn.execute("SAVEPOINT turn_write")
        self.depth += 1
        try:
            yield
            self.conn.execute("RELEASE turn_write")
        except BaseException:
            self.conn.execute("ROLLBACK TO turn_write")
            self.conn.execute("RELEASE turn_write")
            if undo is not None:
                undo()
            raise
        finally:
            self.depth -= 1
        self._writes += 1
        if undo is not None:
            self._undo.append(undo)

    def commit(self) -> None:
        """Commit the turn's writes (nothing when none is open, or from inside a write: a
        transaction a write opens within itself fails as it always did, SQLite nests none)."""
        if not self.open or self.depth:
            return
        self.open = False
        OPEN_GROUPS.commits.remove(self.commit)
        undo, self._undo = self._undo, []
        writes, self._writes = self._writes, 0
        if not self.conn.in_transaction:
            return  # committed already by a `with conn:` of an older writer
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # The disk is full or failing: the turn's writes are lost, as a single event's
            # were before; what the writers keep in memory is read from the database again.
            log.error("storage.group_commit_failed", error=str(exc), writes=writes)
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            for forget in undo:
                forget()
            return
        GROUP_COMMITS.inc()
        GROUP_WRITES.inc(writes)


@contextmanager
def one_write(
    conn: Connection, turn: TurnCommit | None, undo: Callable[[], None] | None = None
) -> Iterator[None]:
    """One write, all or nothing: in `turn`'s group when there is one, else a transaction of
    its own (joining one already open, which commits or undoes it); `undo` is told when it
    is rolled back."""
    if turn is not None:
        with turn.write(undo):
            yield
        return
    if conn.in_transaction:
        yield
        return
    # SQLite: the write lock first (waiting for it as any write does); a deferred BEGIN that
    # reads (the pricer's account) before it writes fails at once, not waiting, when another
    # connection committed in between.
    conn.execute("BEGIN" if is_postgres(conn) else "BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if undo is not None:
            undo()
        raise


def for_connection(conn: object) -> TurnCommit | None:
    """The connection's group commit (made on first use); None where writes stay one
    transaction each (PostgreSQL, a plain sqlite3 connection)."""
    if not isinstance(conn, SqliteConnection):
        return None
    if conn.turn is None:
        conn.turn = TurnCommit(conn)
    assert isinstance(conn.turn, TurnCommit)
    return conn.turn

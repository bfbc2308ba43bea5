"""Transactions of the messaging store, and group commit: the writes asked for within one
turn of the event loop share one transaction. Every statement of the messaging service goes
through it (reads too: they see what the commit before them wrote).

Why: a commit (a WAL append) costs more than all the statements of one message together. The
API answers 201 only once the transaction holding the message is committed; SQLite in WAL
mode with synchronous=NORMAL (flexvoice.storage.sqlite) has then handed the pages to the
operating system, so a kill -9 of the node loses nothing it acknowledged (a power cut may lose
the last commits: synchronous=FULL would be needed for that, at an fsync per commit).

Where: on SQLite on the event loop (a commit of a group is a few hundred microseconds of CPU,
less than a thread hop). On PostgreSQL every statement is a network round trip, so the group
runs in one thread of its own, which alone uses the service's connection; the writes asked
for while a group is in that thread form the next group (one thread, one transaction at a
time: the order of the writes is kept, and their Python state needs no lock)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from flexvoice.storage.engine import Connection, is_postgres, settle
from flexvoice.storage.thread import StoreThread

T = TypeVar("T")


class GroupCommit:
    def __init__(self, conn: Connection, after: Callable[[], None] = lambda: None):
        self.conn = conn
        self.after = after  # run after each commit (status callbacks)
        self._pending: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        self.commits = 0
        self.writes = 0
        self._thread = StoreThread(conn, "sms")
        self._busy = False  # a group is in the thread

    async def write(self, fn: Callable[[], T]) -> T:
        """Run fn inside the next shared transaction; return its result once committed. An
        error in fn undoes fn's writes only (a savepoint) and is raised here."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((fn, future))
        if len(self._pending) == 1 and not self._busy:
            # After every task ready in this turn has had its say: they join this commit.
            loop.call_soon(self._start)
        return await future

    def drain(self) -> None:
        """Commit what waits now (at shutdown, before the connection closes: a part the
        gateway took must be recorded, or the restart would send it again)."""
        self._thread.close()  # a group in the thread ends first
        self._busy = False
        pending, self._pending = self._pending, []
        if pending:
            self._finish(pending, self._run(pending))

    def _start(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:  # drained already
            return
        if not self._thread.off_loop:
            self._finish(pending, self._run(pending))
            return
        self._busy = True
        try:
            ran = self._thread.start(lambda: self._run(pending))
        except RuntimeError:  # stopping: the thread is shut down; drain() writes them
            self._pending[:0] = pending
            self._busy = False
            return
        ran.add_done_callback(lambda f: self._ran(pending, f))

    def _ran(self, pending: list[Any], ran: asyncio.Future[list[Any]]) -> None:
        self._busy = False
        if ran.cancelled():
            return
        self._finish(pending, ran.result())
        if self._pending:  # asked for while the group was in the thread: the next group
            self._start()

    def _run(
        self, pending: list[tuple[Callable[[], Any], asyncio.Future[Any]]]
    ) -> list[tuple[asyncio.Future[Any], BaseException | None, Any]]:
        done: list[tuple[asyncio.Future[Any], BaseException | None, Any]] = []
        try:
            with Transaction(self.conn):
                for fn, future in pending:
                    self.conn.execute("SAVEPOINT one_write")
                    try:
                        value = fn()
                    except Exception as exc:
                        self.conn.execute("ROLLBACK TO SAVEPOINT one_write")
                        self.conn.execute("RELEASE one_write")
                        done.append((future, exc, None))
                    else:
                        self.conn.execute("RELEASE one_write")
                        done.append((future, None, value))
        except Exception as exc:  # the commit itself failed: nothing of it was written
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            done = [(future, exc, None) for _, future in pending]
        return done

    def _finish(
        self,
        pending: list[Any],
        done: list[tuple[asyncio.Future[Any], BaseException | None, Any]],
    ) -> None:
        self.commits += 1
        self.writes += len(pending)
        for future, error, value in done:
            if future.done():  # the waiting request went away; its write stands
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)
        self.after()


class Transaction:
    """BEGIN IMMEDIATE ... COMMIT (BEGIN on PostgreSQL, whose row locks and guarded UPDATEs
    keep two nodes from claiming one part); inside another one it joins it (one commit for
    a part's whole update: fewer WAL writes per message)."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.outer = False

    def __enter__(self) -> None:
        settle()  # the loop's open group of writes (on any connection) first: SQLite nests none
        self.outer = not self.conn.in_transaction
        if self.outer:
            self.conn.execute("BEGIN" if is_postgres(self.conn) else "BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self.outer:
            self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")

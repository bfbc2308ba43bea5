"""PostgreSQL through psycopg 3, behind the small part of sqlite3's interface the stores use.

The stores keep their hand-written SQL with `?` placeholders and explicit transactions, as on
SQLite; this adapter turns the placeholders into psycopg's, runs in autocommit (a statement
outside BEGIN commits by itself, as sqlite3 with isolation_level=None does) and returns plain
tuples. Money columns are `numeric` and come back as `Decimal`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import pq

from flexvoice.errors import UserError

_translated: dict[str, str] = {}


def placeholders(sql: str) -> str:
    """`?` outside quotes becomes `%s`; a literal `%` is doubled for psycopg."""
    done = _translated.get(sql)
    if done is not None:
        return done
    out: list[str] = []
    quote = ""
    for ch in sql:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        out.append("%%" if ch == "%" else ch)
    done = _translated[sql] = "".join(out)
    return done


class PgCursor:
    """What the stores read from a statement: rows (tuples), one row, all rows, rowcount."""

    def __init__(self, cur: psycopg.Cursor[tuple[Any, ...]]):
        self._cur = cur
        self.row_factory: object = None  # sqlite3 code sets it for plain tuples: always so here

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    def fetchone(self) -> Any:  # as sqlite3: a tuple or None
        return self._cur.fetchone() if self._cur.description else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._cur.fetchall() if self._cur.description else []

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._cur) if self._cur.description else iter(())


def _task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # a thread without an event loop
        return None


def _opens(sql: str) -> bool:
    return sql.lstrip()[:5].upper() == "BEGIN"


def _closes(sql: str) -> bool:
    head = sql.lstrip()[:8].upper()
    return head.startswith(("COMMIT", "ROLLBACK", "END"))


class PgConnection:
    """One psycopg connection used like the stores use sqlite3 (thread-safe: one lock).

    The lock is held from BEGIN to COMMIT or ROLLBACK, not only per statement: another
    thread's statement waits for the whole transaction instead of landing inside it (it would
    commit or roll back with it). Two coroutines of one event loop share its thread, so a lock
    cannot keep them apart: a statement of another task inside an open transaction is refused
    at once (a coroutine must not await while it holds a transaction open)."""

    dialect = "postgresql"

    def __init__(self, conn: psycopg.Connection[tuple[Any, ...]], url: str):
        self._conn = conn
        self.url = url
        self.migrated: set[tuple[str, int]] = set()  # (component, scripts) checked here
        self._lock = threading.RLock()
        self._closed = False
        self._tx: tuple[int, asyncio.Task[Any] | None] | None = None  # who opened it

    def _enter(self, sql: str) -> None:
        """Called holding the lock: the statement's place in the open transaction, if any."""
        if self._tx is not None and self._tx[1] is not _task():
            raise RuntimeError(
                f"a statement from another task inside an open transaction: {sql[:60]!r}"
            )
        if _opens(sql):
            self._lock.acquire()  # held until COMMIT or ROLLBACK (_leave)
            self._tx = (threading.get_ident(), _task())

    def _leave(self, sql: str) -> None:
        if _closes(sql) and self._tx is not None:
            self._tx = None
            self._lock.release()

    def _cursor(self) -> psycopg.Cursor[tuple[Any, ...]]:
        """A cursor; a connection found broken (the server restarted, a network cut) is made
        again first. Only before a statement is sent: a statement cut short is never resent,
        since it may have committed."""
        if self._conn.broken or self._conn.closed:
            if self._closed:
                raise psycopg.InterfaceError("the connection is closed")
            self._conn = connect(self.url)._conn
        return self._conn.cursor()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> PgCursor:
        with self._lock:
            self._enter(sql)
            try:
                cur = self._cursor()
                # Without parameters psycopg sends the text as it is: nothing to translate.
                if params:
                    cur.execute(placeholders(sql), params)  # type: ignore[arg-type]
                else:
                    cur.execute(sql)  # type: ignore[arg-type]
            except BaseException:
                if _opens(sql):  # BEGIN failed: no transaction to hold the lock for
                    self._leave("ROLLBACK")
                raise
            finally:
                self._leave(sql)  # a failed COMMIT or ROLLBACK ends the transaction too
            return PgCursor(cur)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> PgCursor:
        with self._lock:
            self._enter(sql)
            cur = self._cursor()
            cur.executemany(placeholders(sql), rows)  # type: ignore[arg-type]
            return PgCursor(cur)

    @property
    def in_transaction(self) -> bool:
        return self._conn.info.transaction_status != pq.TransactionStatus.IDLE

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._conn.close()
            if self._tx is not None and self._tx[0] == threading.get_ident():
                self._leave("ROLLBACK")  # closed half-way through: the server rolled back


def shown(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def connect(url: str, where: str = "storage.database") -> PgConnection:
    """Connect, or a UserError naming the setting, the server and the fix."""
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        # psycopg says 'connection failed: connection to server at "h", port p failed: WHY'
        # then a hint on a second line: WHY is what the operator needs.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = first.rsplit("failed: ", 1)[-1].strip()
        raise UserError(
            f"{where}: cannot reach the PostgreSQL database {shown(url)} ({reason}); start the "
            "server, create the database and its user, or fix the URL in flexvoice.yaml"
        ) from None
    except psycopg.ProgrammingError as exc:
        raise UserError(
            f"{where}: '{shown(url)}' is not a usable PostgreSQL URL ({exc}); write e.g. "
            "postgresql://flexvoice:PASSWORD@127.0.0.1:5432/flexvoice"
        ) from None
    return PgConnection(conn, url)


class PgPool:
    """A few connections for work done off the event loop (the API's usage statements and
    exports, designer logins): made when first needed, up to `size`, then kept for the next
    request instead of a connection (and a server process) per request. A thread wanting one
    while all are taken waits for one to come back."""

    def __init__(self, url: str, size: int = 4):
        self.url = url
        self.size = size
        self._idle: list[PgConnection] = []
        self._made = 0
        self._free = threading.Condition()

    @contextlib.contextmanager
    def connection(self) -> Iterator[PgConnection]:
        with self._free:
            while not self._idle and self._made >= self.size:
                self._free.wait()
            conn = self._idle.pop() if self._idle else None
            if conn is None:
                self._made += 1
        if conn is None:
            try:
                conn = connect(self.url)
            except BaseException:
                self._give_back(None)
                raise
        try:
            yield conn
        finally:
            # A connection left inside a transaction (the work failed half-way) is not
            # handed to the next request: it is closed, and a fresh one made when needed.
            if conn.in_transaction:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
                self._give_back(None)
            else:
                self._give_back(conn)

    def _give_back(self, conn: PgConnection | None) -> None:
        with self._free:
            if conn is None:
                self._made -= 1
            else:
                self._idle.append(conn)
            self._free.notify()

    def close(self) -> None:
        with self._free:
            for conn in self._idle:
                conn.close()
            self._idle.clear()

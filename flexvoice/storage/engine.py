"""What the shared stores (accounts, API keys, usage) need from either engine: one connection
type, a write transaction, the integrity error, and SQL that differs between the two.

SQLite is the embedded default (one node, one file); PostgreSQL is the shared store of
several nodes. A write transaction on SQLite takes the database's write lock (BEGIN
IMMEDIATE); on PostgreSQL it takes a transaction-scoped advisory lock named by the caller, so
two writers of the same kind (two nodes importing usage) take turns just as on SQLite, while
other writers go on.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

from flexvoice.storage.postgres import PgConnection

Connection = sqlite3.Connection | PgConnection

# Catch this where a unique key may be taken already, whichever the engine.
IntegrityError = (sqlite3.IntegrityError, psycopg.IntegrityError)


def is_postgres(conn: Connection) -> bool:
    return isinstance(conn, PgConnection)


def reachable(conn: Connection) -> bool:
    """Whether the database answers a trivial query now (for /healthz)."""
    try:
        conn.execute("SELECT 1").fetchone()
    except (sqlite3.Error, psycopg.Error):
        return False
    return True


@dataclass(frozen=True)
class PerEngine:
    """A migration script whose SQL differs between the engines (types, mostly)."""

    sqlite: str
    postgresql: str

    def for_(self, conn: Connection) -> str:
        return self.postgresql if is_postgres(conn) else self.sqlite


Script = str | PerEngine

# SQLite's types and their PostgreSQL twins: 64-bit integers (SQLite's are), an integer key
# numbered by the database, double precision (PostgreSQL's REAL is 4 bytes: a unix time would
# lose its seconds), bytes, and text sorted by byte as SQLite sorts it.
_PG_TYPES = (
    (re.compile(r"\bINTEGER PRIMARY KEY( AUTOINCREMENT)?\b"), "BIGSERIAL PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\bTEXT\b"), 'TEXT COLLATE "C"'),
)


def postgresql_types(script: str) -> str:
    """A SQLite migration script with PostgreSQL's column types (upper-case type words only:
    write types in capitals, names in lower case)."""
    for pattern, twin in _PG_TYPES:
        script = pattern.sub(twin, script)
    return script


def both(script: str, postgresql: str | None = None) -> PerEngine:
    """One migration for both engines: the SQLite script, and its PostgreSQL twin made by
    postgresql_types (from `postgresql` when the statements themselves differ)."""
    return PerEngine(script, postgresql_types(script if postgresql is None else postgresql))


def lock_key(name: str) -> int:
    """A stable 63-bit advisory lock key for a name (every node computes the same)."""
    return zlib.crc32(name.encode()) | (0x5F56 << 32)


class _OpenGroups(threading.local):
    """The commits of this thread's open groups of writes (flexvoice.storage.turn)."""

    def __init__(self) -> None:
        self.commits: list[Callable[[], None]] = []


OPEN_GROUPS = _OpenGroups()


def settle() -> None:
    """Commit the groups of writes this thread (the event loop's) holds open
    (flexvoice.storage.turn): before a transaction of one's own, on any connection to the
    same file (SQLite nests none, and a second connection would wait for the write lock the
    group holds, on the very thread that must commit it), or before acting on a write that
    must outlive a crash. Another thread's groups are left alone: it waits for the lock."""
    for commit in list(OPEN_GROUPS.commits):
        commit()


@contextmanager
def write_transaction(conn: Connection, lock: str) -> Iterator[None]:
    """BEGIN ... COMMIT, rolled back on any error; writers of the same `lock` take turns."""
    settle()
    if is_postgres(conn):
        conn.execute("BEGIN")
    else:
        conn.execute("BEGIN IMMEDIATE")
    try:
        if is_postgres(conn):
            conn.execute("SELECT pg_advisory_xact_lock(?)", (lock_key(lock),))
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise

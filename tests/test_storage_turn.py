"""The event loop's group commit (flexvoice.storage.turn): the writes of one turn in one
transaction, each undone alone if it fails, committed at the next turn or when settled."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from flexvoice.storage.engine import settle, write_transaction
from flexvoice.storage.sqlite import SqliteConnection, connect
from flexvoice.storage.turn import for_connection

pytestmark = pytest.mark.unit


def _setup(tmp_path: Path) -> tuple[SqliteConnection, sqlite3.Connection]:
    conn = connect(tmp_path / "db.sqlite")
    conn.execute("CREATE TABLE t (v INTEGER PRIMARY KEY)")
    # A second connection, as another thread or process sees the file; short busy wait so a
    # group left open fails the test at once instead of hanging it.
    other = sqlite3.connect(tmp_path / "db.sqlite", timeout=0.2, isolation_level=None)
    return conn, other


def _seen(other: sqlite3.Connection) -> list[int]:
    return [r[0] for r in other.execute("SELECT v FROM t ORDER BY v")]


def test_one_turn_one_commit_each_write_undone_alone(tmp_path: Path) -> None:
    conn, other = _setup(tmp_path)
    turn = for_connection(conn)
    assert turn is not None
    undone: list[int] = []

    async def main() -> None:
        for v in (1, 2):
            with turn.write(undo=lambda v=v: undone.append(v)):  # type: ignore[misc]
                conn.execute("INSERT INTO t VALUES (?)", (v,))
        with pytest.raises(sqlite3.IntegrityError), turn.write(undo=lambda: undone.append(3)):
            conn.execute("INSERT INTO t VALUES (3)")
            conn.execute("INSERT INTO t VALUES (1)")  # fails: 3 goes with it, 1 and 2 stay
        assert turn.open and _seen(other) == []  # not committed within the turn
        await asyncio.sleep(0)  # the next turn
        assert not turn.open
        assert _seen(other) == [1, 2]
        assert undone == [3]

    asyncio.run(main())


def test_settle_commits_at_once_and_other_writers_do_not_wait(tmp_path: Path) -> None:
    conn, other = _setup(tmp_path)
    turn = for_connection(conn)
    assert turn is not None
    third = connect(tmp_path / "db.sqlite")
    third.execute("PRAGMA busy_timeout=200")

    async def main() -> None:
        with turn.write():
            conn.execute("INSERT INTO t VALUES (1)")
        settle()
        assert _seen(other) == [1]
        with turn.write():
            conn.execute("INSERT INTO t VALUES (2)")
        # Another connection of the loop's thread writing: the group commits first, or this
        # would wait for a lock only this thread can free ("database is locked").
        with write_transaction(third, "test"):
            third.execute("INSERT INTO t VALUES (3)")
        assert _seen(other) == [1, 2, 3]
        await asyncio.sleep(0)  # the scheduled commit finds nothing open
        assert not turn.open

    asyncio.run(main())


def test_a_failed_commit_undoes_the_whole_turn(tmp_path: Path) -> None:
    conn, other = _setup(tmp_path)
    # A deferred foreign key: checked only at COMMIT, so the group's COMMIT fails.
    conn.execute("CREATE TABLE child (p INTEGER REFERENCES t (v) DEFERRABLE INITIALLY DEFERRED)")
    turn = for_connection(conn)
    assert turn is not None
    undone: list[str] = []

    async def main() -> None:
        with turn.write(undo=lambda: undone.append("a")):
            conn.execute("INSERT INTO t VALUES (1)")
        with turn.write(undo=lambda: undone.append("b")):
            conn.execute("INSERT INTO child VALUES (99)")
        await asyncio.sleep(0)
        assert not conn.in_transaction
        assert _seen(other) == []
        assert undone == ["a", "b"]

    asyncio.run(main())


def test_without_a_loop_each_write_is_its_own_transaction(tmp_path: Path) -> None:
    conn, other = _setup(tmp_path)
    turn = for_connection(conn)
    assert turn is not None
    with turn.write():
        conn.execute("INSERT INTO t VALUES (1)")
    assert not turn.open and _seen(other) == [1]
    assert for_connection(sqlite3.connect(":memory:")) is None  # plain connections: none

"""The shared PostgreSQL connection keeps a transaction to whoever opened it: another
thread's statement waits for the COMMIT (it would otherwise commit or roll back with a
transaction it knows nothing of), and another coroutine's is refused at once."""

from __future__ import annotations

import asyncio
import threading

import pytest

from flexvoice.storage import postgres
from flexvoice.storage.engine import write_transaction

pytestmark = pytest.mark.process  # a real PostgreSQL server


def test_another_threads_statement_waits_for_the_whole_transaction(pg_url: str) -> None:
    conn = postgres.connect(pg_url)
    try:
        conn.execute("CREATE TABLE tx_probe (n INTEGER)")
        seen: list[int] = []
        began, inserted = threading.Event(), threading.Event()

        def other() -> None:
            began.wait(5)
            # Inside the open transaction this insert would be rolled back with it.
            conn.execute("INSERT INTO tx_probe VALUES (2)")
            inserted.set()

        thread = threading.Thread(target=other)
        thread.start()
        with pytest.raises(ZeroDivisionError), write_transaction(conn, "probe"):
            conn.execute("INSERT INTO tx_probe VALUES (1)")
            began.set()
            assert not inserted.wait(0.5)  # the other thread waits for our COMMIT/ROLLBACK
            seen = [r[0] for r in conn.execute("SELECT n FROM tx_probe").fetchall()]
            raise ZeroDivisionError  # roll back
        thread.join(5)
        assert seen == [1]
        assert [r[0] for r in conn.execute("SELECT n FROM tx_probe").fetchall()] == [2]
    finally:
        conn.execute("DROP TABLE IF EXISTS tx_probe")
        conn.close()


async def test_another_coroutines_statement_inside_a_transaction_is_refused(pg_url: str) -> None:
    conn = postgres.connect(pg_url)
    try:
        conn.execute("BEGIN")

        async def other() -> None:
            conn.execute("SELECT 1")

        with pytest.raises(RuntimeError, match="another task inside an open transaction"):
            await asyncio.create_task(other())
        conn.execute("COMMIT")
        await asyncio.create_task(other())  # once it ended, anyone may use the connection
    finally:
        conn.close()

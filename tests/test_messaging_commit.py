"""Group commit: the writes of one turn of the event loop share a transaction; one failing
write undoes only its own; each writer resumes once committed. And the cached look-ups
forget what another connection changed."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from flexvoice.accounts import create_account
from flexvoice.messaging.commit import GroupCommit
from flexvoice.messaging.lookups import Lookups
from flexvoice.messaging.store import MessageStore
from flexvoice.metering.tariffs import load_tariffs
from flexvoice.numbers import NumberRegistry
from flexvoice.storage.sqlite import connect
from tests.conftest import REPO


async def test_writes_of_one_turn_share_a_commit_and_fail_alone(tmp_path: Path) -> None:
    conn = connect(tmp_path / "c.db")
    conn.execute("CREATE TABLE t (v INTEGER UNIQUE)")
    commits = GroupCommit(conn)

    def insert(v: int) -> int:
        conn.execute("INSERT INTO t (v) VALUES (?)", (v,))
        return v

    results = await asyncio.gather(
        *(commits.write(lambda v=v: insert(v)) for v in (1, 2, 2, 3)), return_exceptions=True
    )
    assert results[:2] == [1, 2] and results[3] == 3
    assert isinstance(results[2], sqlite3.IntegrityError)  # the duplicate, alone
    assert (commits.commits, commits.writes) == (1, 4)
    other = sqlite3.connect(tmp_path / "c.db")  # committed: another connection sees them
    assert [r[0] for r in other.execute("SELECT v FROM t ORDER BY v")] == [1, 2, 3]


async def test_a_cancelled_writer_still_has_its_write_committed(tmp_path: Path) -> None:
    conn = connect(tmp_path / "c.db")
    conn.execute("CREATE TABLE t (v INTEGER)")
    commits = GroupCommit(conn)
    task = asyncio.create_task(commits.write(lambda: conn.execute("INSERT INTO t VALUES (1)")))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    commits.drain()
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1


def test_lookups_forget_what_another_connection_committed(tmp_path: Path) -> None:
    conn = connect(tmp_path / "l.db")
    create_account(conn, "acme", "flexio-payu")
    create_account(conn, "other", "flexio-payu")
    admin = connect(tmp_path / "l.db")  # the numbers API's connection
    NumberRegistry(admin).put("+3226001000", "acme", "support")
    lookups = Lookups(conn, MessageStore(conn), NumberRegistry(conn))
    lookups.fresh()
    assert lookups.owner("+3226001000") == "acme"
    assert lookups.owner("+3226001000") == "acme" and lookups.hits == 1  # cached
    assert lookups.owner("+3226009999") is None  # not ours (yet): remembered too
    NumberRegistry(admin).put("+3226009999", "other", "support")  # bought meanwhile
    assert lookups.owner("+3226009999") is None  # until the next check ...
    lookups.fresh()
    assert lookups.owner("+3226009999") == "other"  # ... which sees the other commit
    lookups.set_opted_out("+3226001000", "+32475123456", True, 0.0)  # through this connection
    assert lookups.opted_out("+3226001000", "+32475123456")


def test_sms_price_kept_per_tariff_version_and_destination(tmp_path: Path) -> None:
    """The accept and the bill read one price (metering's quote, once per tariff, version
    and destination class); a new version in force, or another tariff given to the account
    by another connection, prices the next message anew."""
    folder = tmp_path / "tariffs"
    folder.mkdir()
    text = (REPO / "metering" / "tariffs" / "flexio-payu.yaml").read_text()
    versions = text[text.index("  - valid_from: 2024-01-01") :]
    later = versions.replace("2024-01-01", "2030-01-01").replace('price: "0.095"', 'price: "0.2"')
    (folder / "flexio-payu.yaml").write_text(text + later)
    (folder / "dear.yaml").write_text(
        text.replace("name: flexio-payu", "name: dear").replace('"0.095"', '"0.5"')
    )
    conn = connect(tmp_path / "p.db")
    create_account(conn, "acme", "flexio-payu")
    lookups = Lookups(conn, MessageStore(conn), None, tariffs=load_tariffs(folder))
    now = datetime(2029, 6, 1, tzinfo=UTC).timestamp()
    lookups.fresh()

    def price(to: str, at: float) -> Decimal | None:
        return lookups.sms_price("acme", "+3226001000", to, "2029-06-01T00:00:00Z", at)[0]

    assert price("+32475000001", now) == Decimal("0.095")
    misses = lookups.misses
    assert price("+32475999999", now) == Decimal("0.095")  # another BE mobile: kept
    assert lookups.misses == misses
    later_price = lookups.sms_price(
        "acme", "+3226001000", "+32475000001", "2030-01-02T00:00:00Z",
        datetime(2030, 1, 2, tzinfo=UTC).timestamp(),
    )[0]  # fmt: skip
    assert later_price == Decimal("0.2")  # the version in force then
    connect(tmp_path / "p.db").execute("UPDATE accounts SET tariff = 'dear' WHERE name = 'acme'")
    assert price("+32475000001", now) == Decimal("0.095")  # until the next check ...
    lookups.fresh()
    assert price("+32475000001", now) == Decimal("0.5")  # ... which sees the other commit

"""Rows cached for calls (flexvoice.storage.readcache): a number's route and an account's
tariff come from memory until this process writes them, another connection commits, or
the entry is a second old (fast: no subprocess)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flexvoice.accounts import create_account, set_status
from flexvoice.api.pricing import TariffPricer
from flexvoice.metering.tariffs import load_tariffs
from flexvoice.numbers import NumberRegistry
from flexvoice.storage import readcache
from flexvoice.storage.readcache import ReadCache
from flexvoice.storage.sqlite import connect
from tests.conftest import REPO


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_is_read_once_until_a_write_here_or_elsewhere_or_its_age(
    tmp_path: Path,
) -> None:
    conn = connect(tmp_path / "db.sqlite")
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT)")
    conn.execute("INSERT INTO t VALUES ('a', 'one')")
    reads: list[str] = []

    def load(key: str) -> str | None:
        reads.append(key)
        row = conn.execute("SELECT v FROM t WHERE k = ?", (key,)).fetchone()
        return row[0] if row else None

    clock = Clock()
    cache: ReadCache[str, str | None] = ReadCache(conn, clock=clock)
    assert [cache.get("a", load) for _ in range(3)] == ["one"] * 3
    assert cache.get("zz", load) is None and cache.get("zz", load) is None  # misses too
    assert reads == ["a", "zz"]
    readcache.changed()  # this process wrote
    assert cache.get("a", load) == "one" and reads[-1] == "a"
    other = connect(tmp_path / "db.sqlite")  # the command line, another process
    other.execute("UPDATE t SET v = 'two' WHERE k = 'a'")
    assert cache.get("a", load) == "one"  # asked again only every CHECK_SECONDS
    assert cache.unseen_for() == readcache.CHECK_SECONDS
    clock.now += 2 * readcache.CHECK_SECONDS
    assert cache.get("a", load) == "two"
    conn.execute("UPDATE t SET v = 'three' WHERE k = 'a'")  # a write that told no cache
    assert cache.get("a", load) == "two"
    clock.now += readcache.TTL_SECONDS
    assert cache.get("a", load) == "three"


def test_a_number_route_follows_writes_to_numbers_and_accounts(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite")
    numbers = NumberRegistry(conn)
    numbers.sync_from_yaml(REPO / "sip" / "numbers.yaml")
    route = numbers.lookup("+3225551001")
    assert route is not None and not route.suspended
    assert numbers.lookup("+3225551001") is route  # from memory
    set_status(conn, "demo", "suspended")
    assert numbers.lookup("+3225551001").suspended  # type: ignore[union-attr]
    numbers.set_continuity("+3225551001", "+32475123456", True)
    assert numbers.continuity_for("+3225551001") == ("+32475123456", True)
    create_account(conn, "bakery", "flexio-payu")
    assert numbers.lookup("+3225557777") is None
    numbers.put("+3225557777", "bakery", "support")
    assert numbers.lookup("+3225557777").flow == "support"  # type: ignore[union-attr]
    other = connect(tmp_path / "db.sqlite")
    other.execute("UPDATE numbers SET flow = 'sales' WHERE e164 = '+3225557777'")
    time.sleep(2 * readcache.CHECK_SECONDS)
    assert numbers.lookup("+3225557777").flow == "sales"  # type: ignore[union-attr]
    numbers.delete("+3225557777")
    assert numbers.lookup("+3225557777") is None


def test_the_pricer_reads_an_account_once_and_sees_it_created(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite")
    pricer = TariffPricer(conn, load_tariffs(REPO / "metering" / "tariffs"))
    event: dict[str, Any] = {
        "id": "CA1:leg", "account": "shop", "kind": "call", "direction": "inbound",
        "from": "+32470000001", "to": "+3225551001", "call_id": "CA1",
        "started_at": "2026-03-02T09:00:00+00:00", "answered_at": "2026-03-02T09:00:01+00:00",
        "ended_at": "2026-03-02T09:01:01+00:00",
    }  # fmt: skip
    assert pricer.price_usage(event).unpriced_reason == "account 'shop' does not exist"
    create_account(conn, "shop", "flexio-payu")
    first = pricer.price_usage(event)
    assert first.price_eur is not None and first.billable_seconds >= 60
    hits = pricer._accounts.hits
    assert pricer.price_usage(event) == first and pricer._accounts.hits == hits + 1

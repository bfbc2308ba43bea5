"""Verification rules with an injected clock and an in-memory SMS gateway: expiry, checks,
send limits, destinations, atomic counting, and no code in the database or the log."""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from pathlib import Path
from typing import cast

import pytest

from flexvoice.accounts import create_account
from flexvoice.callcontrol import Originator
from flexvoice.messaging.service import Messaging, Settings
from flexvoice.metering.tariffs import load_tariffs
from flexvoice.storage.sqlite import connect
from flexvoice.verify.core import Policy, Refused, code_mac, prefix_of, send_wait
from flexvoice.verify.service import NotFound, SendLimited, Verifier, VerifySettings
from flexvoice.verify.store import VerificationStore
from flexvoice.verify.voice import CallVoice
from tests.conftest import REPO
from tests.fakesms import FakeGateway

MOBILE = "+32475123456"
SECRET = b"k" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def make(
    tmp_path: Path, policy: Policy | None = None
) -> tuple[Verifier, FakeGateway, Clock, Messaging]:
    conn = connect(tmp_path / "v.db")
    create_account(conn, "acme", "flexio-payu")
    create_account(conn, "other", "flexio-payu")
    clock = Clock()
    tariffs = load_tariffs(REPO / "metering" / "tariffs")
    gateway = FakeGateway()
    messaging = Messaging(
        conn, {"fake": gateway}, Settings(default_gateway="fake"), tariffs=tariffs, clock=clock
    )
    verifier = Verifier(
        conn,
        SECRET,
        VerifySettings(policy or Policy(), "Verify"),
        messaging,
        tariffs=tariffs,
        clock=clock,
    )
    return verifier, gateway, clock, messaging


async def sent_code(messaging: Messaging, gateway: FakeGateway) -> str:
    await messaging.pump()
    text = gateway.submitted[-1][2]
    found = re.search(r"\d{4,10}", text)
    assert found is not None, text
    return found.group(0)


async def test_right_code_approves_once(tmp_path: Path) -> None:
    verifier, gateway, _clock, messaging = make(tmp_path)
    row = await verifier.start("acme", MOBILE, "sms", 6, "en")
    code = await sent_code(messaging, gateway)
    assert len(code) == 6 and code.isdigit()
    assert gateway.submitted[-1][:2] == ("Verify", MOBILE)
    assert (
        await verifier.check("acme", row.id, "000000" if code != "000000" else "111111")
    ).status == "pending"
    assert (await verifier.check("acme", row.id, code)).status == "approved"
    with pytest.raises(NotFound):
        await verifier.check("acme", row.id, code)  # approved: nothing left to check
    assert True
    assert (await verifier.get("acme", row.id)).price_eur == "0.05"


async def test_wrong_code_five_times(tmp_path: Path) -> None:
    verifier, gateway, _clock, messaging = make(tmp_path)
    row = await verifier.start("acme", MOBILE, "sms", 4, "nl")
    code = await sent_code(messaging, gateway)
    wrong = "0000" if code != "0000" else "1111"
    statuses = [(await verifier.check("acme", row.id, wrong)).status for _ in range(5)]
    assert statuses == ["pending"] * 4 + ["max_attempts_reached"]
    with pytest.raises(NotFound):
        await verifier.check("acme", row.id, code)  # even the right code: the checks are used up


async def test_expiry_with_injected_clock(tmp_path: Path) -> None:
    verifier, gateway, clock, messaging = make(tmp_path)
    row = await verifier.start("acme", MOBILE, "sms", 6, "fr")
    code = await sent_code(messaging, gateway)
    assert "Votre code" in gateway.submitted[-1][2]
    clock.now += 599
    assert (await verifier.get("acme", row.id)).status == "pending"
    clock.now += 1
    with pytest.raises(NotFound):
        await verifier.check("acme", row.id, code)
    assert (await verifier.get("acme", row.id)).status == "expired"


async def test_resend_same_code_then_send_limit(tmp_path: Path) -> None:
    verifier, gateway, clock, messaging = make(tmp_path)
    first = await verifier.start("acme", MOBILE, "sms", 6, "en")
    code = await sent_code(messaging, gateway)
    for _ in range(4):
        clock.now += 10
        again = await verifier.start("acme", MOBILE, "sms", 6, "en")
        assert again.id == first.id
        assert await sent_code(messaging, gateway) == code
    assert (await verifier.get("acme", first.id)).sends == 5
    clock.now += 10
    with pytest.raises(SendLimited) as limited:
        await verifier.start("acme", MOBILE, "sms", 6, "en")
    # The oldest of the five sends was 50 s ago: the window of 600 s frees it in 550 s.
    assert limited.value.retry_after == pytest.approx(550)
    clock.now += 551
    await verifier.start("acme", MOBILE, "sms", 6, "en")


async def test_destinations(tmp_path: Path) -> None:
    verifier, _gateway, _clock, _messaging = make(tmp_path)
    with pytest.raises(Refused, match="premium"):
        await verifier.start("acme", "+3290312345", "voice", 6, "en")
    with pytest.raises(Refused, match="FR"):
        await verifier.start("acme", "+33612345678", "sms", 6, "en")
    with pytest.raises(Refused, match="voice"):
        await verifier.start("acme", "+3225551234", "sms", 6, "en")  # a fixed line by SMS
    verifier.settings.account_countries = {"acme": ("BE", "FR")}
    await verifier.start("acme", "+33612345678", "sms", 6, "en")


async def test_prefix_rate(tmp_path: Path) -> None:
    verifier, _gateway, _clock, _messaging = make(tmp_path, Policy(prefix_rate=3))
    for i in range(3):
        await verifier.start("acme", f"+3247512345{i}", "sms", 6, "en")
    assert prefix_of("+32475123459") == "+324751"
    with pytest.raises(SendLimited, match=r"\+324751"):
        await verifier.start("acme", "+32475123459", "sms", 6, "en")
    await verifier.start("acme", "+32476123459", "sms", 6, "en")  # another range


async def test_cross_account(tmp_path: Path) -> None:
    verifier, gateway, _clock, messaging = make(tmp_path)
    row = await verifier.start("acme", MOBILE, "sms", 6, "en")
    code = await sent_code(messaging, gateway)
    with pytest.raises(NotFound):
        await verifier.check("other", row.id, code)
    with pytest.raises(NotFound):
        await verifier.get("other", row.id)
    assert verifier.store.get(row.id, "acme").checks == 0  # type: ignore[union-attr]


def test_two_connections_cannot_both_pass_the_limit(tmp_path: Path) -> None:
    """Checks from two connections (two nodes on one database) at the last allowed check:
    exactly one is counted."""
    conn = connect(tmp_path / "c.db")
    store = VerificationStore(conn)
    from flexvoice.verify.store import VerificationRow

    for i in range(20):
        store.create(
            VerificationRow(
                f"VE{i}",
                "acme",
                MOBILE,
                "sms",
                "en",
                6,
                code_mac(SECRET, f"VE{i}", "1"),
                "pending",
                4,
                1,
                0.0,
                1e12,
                None,
                None,
                None,
            )
        )
    results: list[tuple[int, str] | None] = []
    barrier = threading.Barrier(2)

    def check(i: int) -> None:
        own = VerificationStore(connect(tmp_path / "c.db"))
        barrier.wait()
        results.append(own.count_check(f"VE{i}", "acme", 1.0, 5))

    for i in range(20):
        threads = [threading.Thread(target=check, args=(i,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    counted = [r for r in results if r is not None]
    assert len(counted) == 20 and all(r[0] == 5 for r in counted)
    assert results.count(None) == 20


async def test_no_code_in_database_or_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    verifier, gateway, _clock, messaging = make(tmp_path)
    row = await verifier.start("acme", MOBILE, "sms", 10, "de")
    # Before the gateway took it, the queued message holds the code masked.
    stored = messaging.store.get(messaging.store.list("acme", origins=("verification",))[0].id)
    assert stored is not None and "##########" in stored.body
    code = await sent_code(messaging, gateway)
    await verifier.check("acme", row.id, code)
    verifier.conn.execute("PRAGMA wal_checkpoint(FULL)")
    for path in tmp_path.iterdir():
        assert code.encode() not in path.read_bytes(), path
    assert code not in caplog.text
    for record in caplog.records:
        assert code not in repr(getattr(record, "fields", {}))


async def test_code_lost_in_restart_fails_the_sms_not_leaks_it(tmp_path: Path) -> None:
    verifier, gateway, clock, messaging = make(tmp_path)
    gateway.up = False
    await verifier.start("acme", MOBILE, "sms", 6, "en")
    await messaging.pump()
    # A new engine on the same database: the masked message cannot be sent.
    again = Messaging(
        messaging.conn,
        {"fake": gateway},
        messaging.settings,
        tariffs=messaging.tariffs,
        clock=clock,
    )
    gateway.up = True
    clock.now += 60
    again.store.resume()
    await again.pump()
    assert gateway.submitted == []
    (row,) = again.store.list("acme", origins=("verification",))
    assert row.status == "failed" and "request a new one" in (row.error_message or "")


def test_send_wait_counts_the_window() -> None:
    policy = Policy(max_sends=2, send_window=100)
    assert send_wait([10.0], 50.0, policy) == 0
    assert send_wait([10.0, 20.0], 50.0, policy) == pytest.approx(60)
    assert send_wait([10.0, 20.0], 111.0, policy) == 0


def test_mac_depends_on_id_and_secret() -> None:
    assert code_mac(SECRET, "VE1", "123456") != code_mac(SECRET, "VE2", "123456")
    assert code_mac(SECRET, "VE1", "123456") != code_mac(b"x" * 32, "VE1", "123456")
    assert sqlite3  # the store's own tests above use real SQLite files


async def test_missing_voice_prompts_are_named_whatever_the_code(tmp_path: Path) -> None:
    """The refusal names the missing digit prompts, never which digits the code has."""
    folder = tmp_path / "en"
    folder.mkdir()
    names = ["verify_intro", "verify_repeat", "verify_bye"] + [f"digit_{d}" for d in "012345689"]
    for name in names:
        (folder / f"{name}.wav").write_bytes(b"RIFF")
    voice = CallVoice(lambda: cast(Originator, object()), tmp_path)
    messages = []
    for code in ("123", "777"):
        with pytest.raises(FileNotFoundError) as refused:
            await voice.speak_code("acme", "+32475123456", code, "en")
        messages.append(str(refused.value))
    assert messages == ["verification prompts missing: digit_7.wav"] * 2

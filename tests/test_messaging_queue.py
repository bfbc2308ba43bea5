"""The outbound queue with an injected clock, and the contract that holds the in-memory
gateway of the unit tests to the SMPP gateway against the real SMSC."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import pytest

from flexvoice.accounts import create_account
from flexvoice.messaging.early import WAIT, EarlyReceipts
from flexvoice.messaging.gateway import Gateway, GatewayUnavailable, Inbound
from flexvoice.messaging.model import Receipt, id_keys
from flexvoice.messaging.service import Messaging, Settings
from flexvoice.messaging.sipmsg import SipMessageGateway
from flexvoice.messaging.smpp import SmppGateway
from flexvoice.messaging.text import split
from flexvoice.metering.tariffs import load_tariffs
from flexvoice.storage.sqlite import connect
from flexvoice.system import free_port
from tests.conftest import REPO
from tests.fakesms import FakeGateway
from tests.smsctool import running_smsc

MOBILE = "+32475123456"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Numbers:
    def lookup(self, e164: str) -> Any:
        return type("N", (), {"account": "acme"})() if e164 == "+3226001000" else None


def make(tmp_path: Path, gateway: FakeGateway, **settings: Any) -> tuple[Messaging, Clock]:
    conn = connect(tmp_path / "q.db")
    create_account(conn, "acme", "flexio-payu")
    clock = Clock()
    service = Messaging(
        conn,
        {gateway.name: gateway},
        Settings(default_gateway=gateway.name, **settings),
        numbers=Numbers(),
        tariffs=load_tariffs(REPO / "metering" / "tariffs"),
        clock=clock,
    )
    return service, clock


async def test_backoff_doubles_then_delivers(tmp_path: Path) -> None:
    gateway = FakeGateway(up=False)
    service, clock = make(tmp_path, gateway, retry_base=2.0, retry_max=10.0)
    await gateway.start(service)
    row = await service.send("acme", "+3226001000", MOBILE, "hello")
    waits = []
    for _ in range(5):
        waits.append(await service.pump())
        clock.now += waits[-1]
    assert waits == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert service.store.get(row.id).status == "queued"  # type: ignore[union-attr]
    gateway.up = True
    await service.pump()
    assert service.store.get(row.id).status == "sent"  # type: ignore[union-attr]
    await gateway.receipt(gateway.ids[0])
    assert service.store.get(row.id).status == "delivered"  # type: ignore[union-attr]
    assert len(gateway.submitted) == 1


async def test_validity_period_fails_with_30036(tmp_path: Path) -> None:
    gateway = FakeGateway(up=False)
    service, clock = make(tmp_path, gateway, validity=60.0)
    row = await service.send("acme", "+3226001000", MOBILE, "hello")
    for _ in range(10):
        clock.now += await service.pump() or 1
    done = service.store.get(row.id)
    assert done is not None and done.status == "failed" and done.error_code == 30036
    assert done.price_eur == "0"  # nothing was sent, nothing is billed


async def test_inbound_long_message_is_joined_and_stop_is_kept(tmp_path: Path) -> None:
    service, _ = make(tmp_path, FakeGateway())
    text = "hello " * 70  # three parts of at most 153 characters
    for i in (2, 0, 1):  # parts may come in any order
        await service.inbound(
            "fake", Inbound(MOBILE, "+3226001000", text[i * 153 : (i + 1) * 153], (9, 3, i + 1))
        )
    (row,) = service.store.list("acme")
    assert row.body == text and row.direction == "inbound" and row.segments == 3
    await service.inbound("fake", Inbound(MOBILE, "+3226001000", " Stop "))
    assert service.store.opted_out("+3226001000", MOBILE)
    await service.inbound("fake", Inbound(MOBILE, "+3299999999", "STOP"))  # not our number
    assert len(service.store.list("acme")) == 2


# ---- the contract: what the queue relies on, from either gateway ----------------------


class Events:
    def __init__(self) -> None:
        self.receipts: list[Receipt] = []
        self.inbound_messages: list[Inbound] = []

    async def receipt(self, gateway: str, receipt: Receipt) -> None:
        self.receipts.append(receipt)

    async def inbound(self, gateway: str, message: Inbound) -> None:
        self.inbound_messages.append(message)


async def contract(gateway: Gateway, events: Events, deliver_receipt: Any) -> None:
    _, (part,) = split("contract", 0)
    ids = [await gateway.submit("+3226001000", MOBILE, part) for _ in range(3)]
    assert len(set(ids)) == 3
    for message_id in ids:
        await deliver_receipt(message_id)
    for _ in range(100):
        if len(events.receipts) == 3:
            break
        await asyncio.sleep(0.05)
    assert [r.status for r in events.receipts] == ["delivered"] * 3
    # Each receipt names its submit's id, in another base: the lookup keys meet.
    # (receipts may come in any order)
    for receipt in events.receipts:
        assert any(set(id_keys(receipt.gateway_id)) & set(id_keys(i)) for i in ids)


async def test_contract_fake(tmp_path: Path) -> None:
    gateway, events = FakeGateway(), Events()
    await gateway.start(events)
    await contract(gateway, events, gateway.receipt)
    gateway.up = False
    with pytest.raises(GatewayUnavailable):
        await gateway.submit("+3226001000", MOBILE, split("x", 0)[1][0])


@pytest.mark.process  # the SMSC runs as its own process
async def test_contract_smpp(tmp_path: Path) -> None:
    port = free_port()
    events = Events()
    gateway = SmppGateway("smpp", "127.0.0.1", port, "flexvoice", "")
    with running_smsc(tmp_path, port) as smsc:
        await gateway.start(events)

        async def smsc_sends_receipt(message_id: str) -> None:
            pass  # the SMSC sends one by itself for every submit

        await contract(gateway, events, smsc_sends_receipt)
        smsc.mobile_originated(MOBILE, "+3226001000", "hi")
        for _ in range(100):
            if events.inbound_messages:
                break
            await asyncio.sleep(0.05)
        assert events.inbound_messages == [Inbound(MOBILE, "+3226001000", "hi", None)]
        smsc.stop()
        await asyncio.sleep(0.3)
        with pytest.raises(GatewayUnavailable):
            await gateway.submit("+3226001000", MOBILE, split("x", 0)[1][0])
    await gateway.stop()


async def test_a_gateway_bug_or_a_long_outage_strands_nothing(tmp_path: Path) -> None:
    class Broken(FakeGateway):
        async def submit(self, from_addr: str, to_addr: str, part: Any) -> str:
            if self.up:
                return await super().submit(from_addr, to_addr, part)
            raise RuntimeError("a bug in a gateway")

    gateway = Broken(up=False)
    service, clock = make(tmp_path, gateway, retry_base=2.0, retry_max=60.0)  # type: ignore[arg-type]
    row = await service.send("acme", "+3226001000", MOBILE, "hello")
    await service.pump()
    assert service.store.part_statuses(row.id) == ["queued"]  # back in the queue, not 'sending'
    assert service.backoff(10_000) == 60.0  # a long outage never overflows the back-off
    gateway.up = True
    clock.now += 10
    await service.pump()
    assert service.store.get(row.id).status == "sent"  # type: ignore[union-attr]


async def test_a_receipt_read_before_its_submit_is_recorded_still_counts(tmp_path: Path) -> None:
    """An SMSC may send the receipt right after submit_sm_resp: it can be handled before the
    part's gateway id is committed. It waits for it instead of being dropped as unmatched."""

    class Hasty(FakeGateway):
        async def submit(self, from_addr: str, to_addr: str, part: Any) -> str:
            message_id = await super().submit(from_addr, to_addr, part)
            early = asyncio.create_task(self.receipt(message_id))
            await asyncio.sleep(0.01)  # the receipt is handled (and matches nothing yet)
            assert early.done() and len(service._early) >= 1
            return message_id

    gateway = Hasty()
    service, _ = make(tmp_path, gateway)  # type: ignore[arg-type]
    await gateway.start(service)
    rows = [await service.send("acme", "+3226001000", MOBILE, f"hello {i}") for i in range(3)]
    await service.pump()
    assert [service.store.get(r.id).status for r in rows] == ["delivered"] * 3  # type: ignore[union-attr]
    assert len(service._early) == 0


def test_early_receipts_expire_and_are_bounded() -> None:
    early = EarlyReceipts()
    assert early.park("smpp", Receipt("65537", "DELIVRD"), now=0.0)
    assert early.expired(now=WAIT - 1) == []
    assert early.take("smpp", "ffff") == []  # another id: not taken
    assert [r.gateway_id for _, r in early.expired(now=WAIT + 1)] == ["65537"]
    assert len(early) == 0
    early.park("smpp", Receipt("65537", "DELIVRD"), now=0.0)
    assert [r.gateway_id for r in early.take("smpp", "10001")] == ["65537"]  # hex of it


class Trunk:
    """The SIP MESSAGE transport as the worker pool answers: (code, reason, Call-ID)."""

    def __init__(self, *answers: tuple[int, str]) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def send_message(self, from_addr: str, to: str, text: str) -> tuple[int, str, str]:
        self.calls += 1
        code, reason = self.answers.pop(0)
        return code, reason, f"call-{self.calls}@trunk"


@pytest.mark.parametrize(
    ("answer", "status"),
    [((200, "OK"), "delivered"), ((202, "Accepted"), "sent"), ((404, "Not Found"), "failed")],
)
async def test_sip_message_outcome_is_the_last_hops_answer(
    tmp_path: Path, answer: tuple[int, str], status: str
) -> None:
    """200: the recipient's side took it (delivered); 202: a store-and-forward server did
    (sent, no later receipt in SIP); 404: refused for good."""
    trunk = Trunk(answer)
    gateway = SipMessageGateway(lambda: trunk)
    service, _ = make(tmp_path, gateway)  # type: ignore[arg-type]
    await gateway.start(service)
    row = await service.send("acme", "+3226001000", MOBILE, "hello")
    await service.pump()
    for _ in range(50):  # the 200's receipt is applied in a later turn of the loop
        await asyncio.sleep(0.01)
        if service.store.get(row.id).status == status:  # type: ignore[union-attr]
            break
    assert service.store.get(row.id).status == status  # type: ignore[union-attr]
    if status != "failed":
        assert service.store.find_part("sip", "call-1@trunk") == (row.id, 0)


@pytest.mark.process  # the SMSC runs as its own process
async def test_a_slow_submit_holds_back_only_its_own_slot(tmp_path: Path) -> None:
    """Sending is continuous: while the real SMSC takes 4 s to answer one submit, messages
    accepted after it go out at once through the other slots of the window; each reaches
    the SMSC exactly once."""
    port = free_port()
    slow = "+32475000999"
    with running_smsc(tmp_path, port, "--slow-to", slow, "--slow-seconds", "4") as smsc:
        conn = connect(tmp_path / "q.db")
        create_account(conn, "acme", "flexio-payu")
        gateway = SmppGateway("smpp", "127.0.0.1", port, "flexvoice", "")
        service = Messaging(
            conn,
            {"smpp": gateway},
            Settings(default_gateway="smpp", window=4),
            numbers=Numbers(),
            tariffs=load_tariffs(REPO / "metering" / "tariffs"),
        )
        await gateway.start(service)
        queue = asyncio.create_task(service.run())
        try:
            first = await service.send("acme", "+3226001000", slow, "slow one")
            await asyncio.sleep(0.5)  # its submit is out, unanswered
            assert service.store.part_statuses(first.id) == ["sending"]
            started = time.monotonic()
            rows = [
                await service.send("acme", "+3226001000", MOBILE, f"next {i}") for i in range(12)
            ]
            await smsc.wait_received(12, timeout=10)
            took = time.monotonic() - started
            assert took < 2.5, took  # not after the slow one's 4 s
            assert service.store.part_statuses(first.id) == ["sending"]
            for _ in range(100):
                if all(service.store.get(r.id).status == "sent" for r in [first, *rows]):  # type: ignore[union-attr]
                    break
                await asyncio.sleep(0.1)
            texts = sorted(m["text"] for m in smsc.received())
            assert texts == sorted(["slow one", *(f"next {i}" for i in range(12))])
        finally:
            queue.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await queue
            await gateway.stop()


async def test_a_failure_after_the_gateway_took_a_part_never_sends_it_again(
    tmp_path: Path,
) -> None:
    class BrokenSink:
        def record(self, event: dict[str, Any]) -> None:
            raise RuntimeError("the usage sink failed")

    gateway = FakeGateway()
    service, clock = make(tmp_path, gateway)
    service.usage = BrokenSink()
    row = await service.send("acme", "+3226001000", MOBILE, "hello")
    for _ in range(5):
        clock.now += await service.pump() or 1
    assert len(gateway.submitted) == 1
    assert service.store.part_statuses(row.id) == ["sent"]

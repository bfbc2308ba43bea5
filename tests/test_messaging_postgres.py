"""Messages, verifications and their send queue in the shared PostgreSQL (storage.database):
priced under the accounts and tariffs of that store, one queue for several nodes, each part
sent once, a verification code sent only by the node that holds it, a lost node's parts taken
over by another, and none of the service's statements on the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from typing import Any

import pytest
import redis.asyncio as aioredis

from flexvoice.accounts import create_account, set_status
from flexvoice.cluster.member import Member
from flexvoice.cluster.state import ClusterState, client_name
from flexvoice.messaging.gateway import Inbound
from flexvoice.messaging.model import GATEWAY_ERROR
from flexvoice.messaging.service import MessageRefused, Messaging, Settings
from flexvoice.metering.tariffs import load_tariffs
from flexvoice.numbers import NumberRegistry
from flexvoice.storage import postgres
from flexvoice.verify.core import Policy
from flexvoice.verify.service import Verifier, VerifySettings
from tests.conftest import REPO
from tests.fakesms import FakeGateway
from tests.test_cluster_state import Sink

pytestmark = pytest.mark.process  # a real PostgreSQL server

TARIFFS = load_tariffs(REPO / "metering" / "tariffs")
OURS = "+3226001000"
MOBILE = "+32475123456"


def node(url: str, name: str) -> tuple[Messaging, FakeGateway, Verifier]:
    conn = postgres.connect(url)
    gateway = FakeGateway()
    messaging = Messaging(
        conn,
        {"fake": gateway},
        Settings(default_gateway="fake", window=4),
        numbers=NumberRegistry(conn),
        tariffs=TARIFFS,
        node=name,
    )
    verifier = Verifier(  # a connection of its own, as on a node: its own thread uses it
        postgres.connect(url),
        b"s" * 32,
        VerifySettings(Policy(), "Verify"),
        messaging,
        tariffs=TARIFFS,
    )
    return messaging, gateway, verifier


def seeded(url: str) -> None:
    admin = postgres.connect(url)
    create_account(admin, "acme", "flexio-payu")
    NumberRegistry(admin).put(OURS, "acme", "support")


async def test_priced_from_the_shared_accounts_and_stored_there(pg_url: str) -> None:
    seeded(pg_url)
    messaging, gateway, verifier = node(pg_url, "a")
    await gateway.start(messaging)
    long = "日" * 100  # UCS-2: two segments
    row = await messaging.accept("acme", OURS, MOBILE, long)
    assert (row.price_eur, row.segments, row.encoding) == ("0.190", 2, "UCS-2")
    await messaging.pump()
    sent = messaging.store.get(row.id)
    assert sent is not None and sent.status == "sent" and sent.price_eur == "0.190"
    await gateway.receipt(gateway.ids[0])
    await gateway.receipt(gateway.ids[1])
    assert messaging.store.get(row.id).status == "delivered"  # type: ignore[union-attr]
    # Another node reads the same message from the shared store.
    other, _, _ = node(pg_url, "b")
    assert other.store.get(row.id, "acme") is not None
    # STOP keeps an opt-out list there; the next message to that number is refused.
    await messaging.inbound("fake", Inbound(MOBILE, OURS, "STOP"))
    with pytest.raises(MessageRefused, match="21610"):
        await other.accept("acme", OURS, MOBILE, "again")
    await messaging.inbound("fake", Inbound(MOBILE, OURS, "START"))
    # A verification is priced from the shared store too, and its code checks there.
    v = await verifier.start("acme", "+32475000111", "sms", 6, "en")
    assert v.price_eur == "0.05"
    await messaging.pump()
    code = re.search(r"\d{6}", gateway.submitted[-1][2])
    assert code is not None
    assert messaging.store.get(v.message_id or "").body.count("#") == 6  # type: ignore[union-attr]
    assert (await verifier.check("acme", v.id, code.group(0))).status == "approved"
    # A suspension written by an admin elsewhere counts for the next price at once.
    set_status(postgres.connect(pg_url), "acme", "suspended")
    messaging.lookups.fresh()  # what every message does first
    assert messaging.lookups.account("acme").status == "suspended"  # type: ignore[union-attr]


async def test_two_nodes_share_the_queue_and_send_each_part_once(pg_url: str) -> None:
    seeded(pg_url)
    a, gateway_a, verifier_a = node(pg_url, "a")
    b, gateway_b, _ = node(pg_url, "b")
    for service, gateway in ((a, gateway_a), (b, gateway_b)):
        await gateway.start(service)
    rows = []
    for i in range(30):
        service = a if i % 2 else b
        rows.append(await service.accept("acme", OURS, f"+3247500{i:04d}", f"m {i}"))
    v = await verifier_a.start("acme", "+32475000999", "sms", 6, "en")
    queues = [asyncio.create_task(s.run()) for s in (a, b)]
    try:
        for _ in range(200):
            submitted = gateway_a.submitted + gateway_b.submitted
            if len(submitted) >= 31:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # a double would show now
    finally:
        for q in queues:
            q.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await q
    texts = [t for _, _, t in gateway_a.submitted + gateway_b.submitted]
    assert sorted(t for t in texts if t.startswith("m ")) == sorted(f"m {i}" for i in range(30))
    assert len(texts) == 31, texts
    # The code went out from the node that holds it, never as 'lost in a restart'.
    assert any("verification code" in t for _, _, t in gateway_a.submitted)
    assert not any("verification code" in t for _, _, t in gateway_b.submitted)
    assert a.store.get(v.message_id or "").status == "sent"  # type: ignore[union-attr]
    assert gateway_a.submitted and gateway_b.submitted  # both nodes took a share
    for row in rows:
        assert a.store.get(row.id).status == "sent"  # type: ignore[union-attr]


async def test_a_restart_puts_back_only_its_own_parts(pg_url: str) -> None:
    seeded(pg_url)
    a, _, _ = node(pg_url, "a")
    row = await a.accept("acme", OURS, MOBILE, "in flight on a")
    (part,) = a.store.due(a.clock(), 10)
    assert a.store.claim([part]) == [part]  # a is submitting it
    b, _, _ = node(pg_url, "b")
    assert b.store.claim([part]) == []  # b cannot take it too
    assert b.store.resume() == 0  # b's restart leaves a's part alone
    assert a.store.part_statuses(row.id) == ["sending"]
    assert a.store.resume() == 1  # a's restart sends it again
    assert a.store.part_statuses(row.id) == ["queued"]


async def test_no_statement_of_the_service_runs_on_the_event_loop(pg_url: str) -> None:
    seeded(pg_url)
    messaging, gateway, verifier = node(pg_url, "a")
    await gateway.start(messaging)
    on_loop: list[str] = []

    def watch(conn: Any) -> None:
        execute = conn.execute

        def watched(sql: str, params: Any = ()) -> Any:
            if threading.current_thread() is threading.main_thread():
                on_loop.append(sql)
            return execute(sql, params)

        conn.execute = watched

    watch(messaging.conn)
    watch(verifier.conn)
    row = await messaging.accept("acme", OURS, MOBILE, "hello")
    with pytest.raises(MessageRefused):
        await messaging.accept("acme", OURS, "+3225551000", "to a fixed line")
    await messaging.pump()
    await gateway.receipt(gateway.ids[0])
    await messaging.inbound("fake", Inbound(MOBILE, OURS, "STOP"))
    await messaging.take_over("gone")
    v = await verifier.start("acme", "+32475000444", "sms", 6, "en")
    await messaging.pump()
    code = re.search(r"\d{6}", gateway.submitted[-1][2])
    wrong = "000000" if code is None or code.group(0) != "000000" else "111111"
    assert (await verifier.check("acme", v.id, wrong)).status == "pending"
    assert (await verifier.cancel("acme", v.id)).status == "canceled"
    assert (await verifier.get("acme", v.id)).status == "canceled"
    assert on_loop == []
    assert messaging.store.get(row.id).status == "delivered"  # type: ignore[union-attr]


async def test_a_lost_nodes_parts_are_sent_by_another_once(pg_url: str, redis_url: str) -> None:
    """Node a dies with one message taken by the SMSC (recorded sent with its id), one part
    submitted but unanswered (`sending`) and a code of its own queued. Once the cluster
    tells it lost (heartbeat expired and no Redis connection, not a mere stall), node b
    sends the unanswered part, once; the accepted one is never sent again; the code's
    message fails (the code was in a's memory)."""
    seeded(pg_url)
    a, gateway_a, verifier_a = node(pg_url, "a")
    b, gateway_b, _ = node(pg_url, "b")
    for service, gateway in ((a, gateway_a), (b, gateway_b)):
        await gateway.start(service)
    accepted = await a.accept("acme", OURS, MOBILE, "taken by the SMSC")
    await a.pump()
    unanswered = await a.accept("acme", OURS, "+32475000222", "unanswered")
    (part,) = a.store.due(a.clock(), 10)
    assert a.store.claim([part]) == [part]  # a submitted it, then died
    code = await verifier_a.start("acme", "+32475000333", "sms", 6, "en")
    a_redis = aioredis.from_url(redis_url, client_name=client_name("a"))
    b_redis = aioredis.from_url(redis_url, client_name=client_name("b"))
    member_a = Member(ClusterState(a_redis, "a"), "http://a", sink=Sink(), calls=None,
                      shared_edge=False)  # fmt: skip
    member_b = Member(ClusterState(b_redis, "b"), "http://b", sink=Sink(), calls=None,
                      shared_edge=False)  # fmt: skip
    member_b.lost_hooks.append(b.take_over)
    try:
        await member_a.join()
        await member_b.join()
        # Stalled: its heartbeat expired but it holds its connection: its parts stay its own.
        await b_redis.delete("fv:node:a")
        await member_b.on_beat([])
        assert a.store.part_statuses(unanswered.id) == ["sending"]
        await a_redis.aclose()  # killed: the kernel closes its connection
        await asyncio.sleep(0.1)
        await member_b.on_beat([])
    finally:
        await b_redis.aclose()
    assert a.store.part_statuses(unanswered.id) == ["queued"]
    await b.pump()
    assert [t for _, _, t in gateway_b.submitted] == ["unanswered"]
    assert [t for _, _, t in gateway_a.submitted] == ["taken by the SMSC"]
    assert b.store.get(unanswered.id).status == "sent"  # type: ignore[union-attr]
    assert b.store.get(accepted.id).status == "sent"  # type: ignore[union-attr]
    lost = b.store.get(code.message_id or "")
    assert lost is not None and lost.status == "failed" and lost.error_code == GATEWAY_ERROR
    assert "node that made it" in (lost.error_message or "")
    await member_b.on_beat([])  # taken over once: nothing more to send
    await b.pump()
    assert len(gateway_b.submitted) == 1

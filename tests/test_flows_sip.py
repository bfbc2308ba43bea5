"""Demo flows end to end through real SIP: sipp calls a pjsua2 worker, the flow runtime drives
the call, and the dialled targets are sipp callees behind the trunk. Only the clock is
injected (opening hours); ring timeouts and prompts run for real."""

from __future__ import annotations

import asyncio
import random
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from flexvoice.flows.deps import FlowDeps
from flexvoice.flows.runtime import FlowRuntime
from flexvoice.flows.webhooks import AiohttpWebhooks
from flexvoice.sip.leg import SipLeg
from flexvoice.sip.pool import PoolSettings, WorkerPool
from tests.conftest import REPO, crm_flow, free_port_range
from tests.fakeleg import TARIFFS, Observer, Sink
from tests.sipptool import Uas, counts, run_uac_async

pytestmark = pytest.mark.sip

MONDAY_10 = datetime.fromisoformat("2026-03-02T10:00:00+01:00")
SUNDAY_10 = datetime.fromisoformat("2026-03-01T10:00:00+01:00")


class Node:
    def __init__(self, runtime: FlowRuntime, pool: WorkerPool, flow: str):
        self.runtime = runtime
        self.pool = pool
        self.flow = flow
        self.legs: list[SipLeg] = []
        self.reasons: list[str] = []

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.pool.settings.base_port}"


Factory = Callable[..., Awaitable[tuple[Node, Observer, Sink, dict[str, tuple[str, bool]]]]]


@pytest.fixture
async def flow_node(tmp_path: Path) -> AsyncIterator[Factory]:
    pools: list[WorkerPool] = []

    async def make(
        flow: str,
        trunk: Uas,
        at: datetime = MONDAY_10,
        flows_dir: Path = REPO / "flows",
        webhooks: AiohttpWebhooks | None = None,
    ) -> tuple[Node, Observer, Sink, dict[str, tuple[str, bool]]]:
        observer, sink = Observer(), Sink()
        continuity: dict[str, tuple[str, bool]] = {}
        deps = FlowDeps(
            webhooks=webhooks,
            usage_sink=sink,
            prices_for=lambda account, kind: TARIFFS["vms-smart-routing"].prices(kind, at),
            continuity_for=continuity.get,
            observer=observer,
            clock=lambda: at,
            recordings_dir=tmp_path / "recordings",
            tts_cache_dir=tmp_path / "tts",
        )
        runtime = FlowRuntime(flows_dir, REPO / "ivr_prompts", deps)
        assert not [p for p in runtime.scan() if p.severity == "error"]
        node: Node

        async def on_incoming(leg: SipLeg) -> None:
            node.legs.append(leg)
            leg.account = "acme"
            node.reasons.append(await runtime.start_call(leg, flow, account="acme"))

        settings = PoolSettings(
            count=1,
            base_port=free_port_range(1),
            rtp_base=random.randrange(30000, 50000, 2),
            trunk=trunk.uri_host,
        )
        pool = WorkerPool(settings, on_incoming)
        await pool.start()
        pools.append(pool)
        node = Node(runtime, pool, flow)
        return node, observer, sink, continuity

    yield make
    for pool in pools:
        await pool.stop(grace=0)


async def settle(node: Node) -> None:
    for _ in range(100):
        if node.reasons and all(leg.ended for leg in node.legs):
            return
        await asyncio.sleep(0.05)


async def test_menu_digit_reaches_the_orders_phone(flow_node: Factory) -> None:
    phone = Uas("uas_answer.xml", free_port_range(1), calls=1)
    try:
        node, observer, _sink, _ = await flow_node("bakery-main", phone)
        # Digit 1 (SIP INFO) one second into the menu prompt, then talk for 3 s and hang up.
        result = await run_uac_async("uac_ivr.xml", node.target, "+3225551001", hold_ms=3000)
        await settle(node)
    finally:
        phone_log = phone.finish()  # its one call over: the counts below are final
    assert result.successful == 1, result.output
    assert observer.steps() == ["check_hours", "menu", "orders"]
    assert observer.whys()[2] == "digit 1"
    assert node.reasons[0] == "the caller hung up during orders"
    assert counts(phone_log) == (1, 0), phone_log[-2000:]  # answered, then got our BYE


async def test_busy_phones_take_on_busy_to_voicemail(flow_node: Factory, tmp_path: Path) -> None:
    phones = Uas("uas_busy.xml", free_port_range(1), calls=2)
    try:
        node, observer, sink, _ = await flow_node("bakery-main", phones)
        result = await run_uac_async("uac_ivr.xml", node.target, "+3225551001", hold_ms=6000)
        await settle(node)
    finally:
        phones.stop()
    assert result.successful == 1, result.output
    steps = observer.steps()
    assert steps[:4] == ["check_hours", "menu", "orders", "voicemail"], steps
    assert "busy (486" in observer.whys()[3] and observer.whys()[3].endswith("-> on_busy")
    assert sink.ids()[0].endswith(":reroute")  # Smart Routing, VMS tariff
    recording = next(e for e in sink.events if e["kind"] == "recording")
    assert recording["call_id"] == node.legs[0].call_id
    # The voicemail is a real 8 kHz WAV that PJSIP wrote while the caller held the line.
    [wav] = (tmp_path / "recordings").rglob("*.wav")
    with wave.open(str(wav)) as audio:
        assert audio.getframerate() == 8000
        assert audio.getnframes() / 8000 > 1.0


async def test_no_answer_takes_on_no_answer_after_the_ring_timeout(
    flow_node: Factory, tmp_path: Path
) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "ring.yaml").write_text(
        """flow: ring
start: call
steps:
  call:
    dial: {targets: ["+3226009999"], ring_timeout: 1s, on_no_answer: sorry, on_busy: bye}
  sorry:
    play: {prompt: all_busy, then: bye}
  bye:
    hangup: {}
"""
    )
    phone = Uas("uas_noanswer.xml", free_port_range(1), calls=1)
    try:
        node, observer, _sink, _ = await flow_node("ring", phone, flows_dir=flows)
        started = asyncio.get_running_loop().time()
        result = await run_uac_async("uac_until_bye.xml", node.target, "+3225551001")
        took = asyncio.get_running_loop().time() - started
        await settle(node)
    finally:
        phone.stop()
    assert result.successful == 1, result.output
    assert observer.steps()[:2] == ["call", "sorry"]
    assert "no-answer" in observer.whys()[1]
    assert took >= 1.0  # the ring timeout ran for real


async def test_closed_hours_go_to_voicemail_without_ringing_anyone(flow_node: Factory) -> None:
    phone = Uas("uas_answer.xml", free_port_range(1), calls=1)
    try:
        node, observer, _sink, _ = await flow_node("bakery-main", phone, at=SUNDAY_10)
        result = await run_uac_async("uac_call.xml", node.target, "+3225551001", hold_ms=4000)
        await settle(node)
    finally:
        phone.stop()
    assert result.successful == 1, result.output
    assert observer.steps()[:3] == ["check_hours", "closed", "voicemail"]
    assert observer.whys()[1].startswith("closed")
    assert not {"orders", "staff"} & set(observer.steps())  # nobody was rung


async def test_continuity_switched_on_then_off_between_two_calls(flow_node: Factory) -> None:
    phone = Uas("uas_answer.xml", free_port_range(1), calls=2)
    try:
        node, observer, sink, continuity = await flow_node("bakery-main", phone)
        continuity["+3225551001"] = ("+32475123456", True)
        first = await run_uac_async("uac_expect_302.xml", node.target, "+3225551001")
        await settle(node)
        continuity["+3225551001"] = ("+32475123456", False)
        second = await run_uac_async("uac_ivr.xml", node.target, "+3225551001", hold_ms=1500)
        await settle(node)
    finally:
        phone.stop()
    assert first.successful == 1, first.output
    assert second.successful == 1, second.output
    first_id, second_id = (leg.call_id for leg in node.legs)
    assert observer.steps(first_id) == ["continuity"]
    assert observer.steps(second_id)[:3] == ["check_hours", "menu", "orders"]
    assert f"{first_id}:reroute" in sink.ids()


async def test_a_webhook_answer_picks_the_branch(
    flow_node: Factory, tmp_path: Path, crm: tuple[str, list[Any], dict[str, Any]]
) -> None:
    url, seen, answer = crm
    answer["body"] = {"next": "vip", "variables": {"tier": "gold"}}
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "bilingual.yaml").write_text(crm_flow(url))
    phone = Uas("uas_answer.xml", free_port_range(1), calls=1)
    client = AiohttpWebhooks()
    try:
        node, observer, _sink, _ = await flow_node(
            "bilingual-line", phone, flows_dir=flows, webhooks=client
        )
        # "2" for French on the language menu, then the CRM's answer routes the call.
        result = await run_uac_async("uac_ivr_2.xml", node.target, "+3225551001", hold_ms=3000)
        await settle(node)
    finally:
        await client.close()
        phone.stop()
    assert result.successful == 1, result.output
    assert observer.steps()[:4] == ["choose_language", "french", "crm", "vip"]
    assert seen and seen[0]["from"] == "+3225550100" and seen[0]["language"] == "fr"

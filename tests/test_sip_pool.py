"""The worker pool with real pjsua2 workers and sipp as the far end (no mocks of SIP)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from flexvoice.sip import metrics
from flexvoice.sip.leg import SipLeg
from flexvoice.sip.originate import PoolOriginator
from flexvoice.sip.pool import NoFreeSlot
from flexvoice.sip.usage import call_usage
from tests.conftest import free_port_range
from tests.poolkit import PoolHarness, stay, tone
from tests.sipptool import Uas, run_uac_async

pytestmark = pytest.mark.sip


async def test_inbound_call_answered_and_prompt_rtp_reaches_the_caller(
    make_pool: Callable[..., Awaitable[PoolHarness]], tmp_path: Path
) -> None:
    prompt = tone(tmp_path / "tone.wav")
    played: list[object] = []

    async def handler(leg: SipLeg) -> None:
        await leg.answer()
        played.append(await leg.play([prompt]))
        await stay(leg)

    h = await make_pool(handler)
    # The caller's SDP names our own socket as its media address: what arrives is the prompt.
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    rtp.setblocking(False)
    result = await run_uac_async(
        "uac_call.xml",
        h.target,
        "+3225551234",
        hold_ms=3000,
        keys={"rtp_port": str(rtp.getsockname()[1])},
    )
    packets = []
    while True:
        try:
            packets.append(rtp.recv(2048))
        except BlockingIOError:
            break
    rtp.close()
    assert result.successful == 1, result.output
    assert played and played[0].interrupted_by is None  # type: ignore[attr-defined]
    audio = [p for p in packets if p[1] & 0x7F == 8]  # PCMA, as offered first
    assert len(audio) >= 60, f"only {len(audio)} RTP packets of the 2 s prompt"
    # A 440 Hz tone, not silence (0xD5 is A-law silence).
    assert any(sum(b != 0xD5 for b in p[12:]) > 100 for p in audio)
    assert h.legs[0].caller == "+3225550100" and h.legs[0].callee == "+3225551234"


async def test_call_slots_are_reused_without_cutting_later_calls(
    make_pool: Callable[..., Awaitable[PoolHarness]], tmp_path: Path
) -> None:
    # pjsua reuses a call's slot as soon as it ends; a pjsua2 Call object destroyed after
    # that hangs up the slot's next call. 16 short calls through one 4-slot worker, each
    # hearing a long prompt and hanging up itself: every one must last until its own BYE.
    prompt = tone(tmp_path / "long.wav", 10.0)

    async def handler(leg: SipLeg) -> None:
        await leg.answer()
        await leg.play([prompt])

    h = await make_pool(handler)
    result = await run_uac_async(
        "uac_call.xml", h.target, "+3225551234", calls=16, rate=8, limit=4, hold_ms=1500
    )
    assert (result.successful, result.failed) == (16, 0), result.output


async def test_dtmf_digits_arrive_in_order_rfc4733_and_sip_info(
    make_pool: Callable[..., Awaitable[PoolHarness]], tmp_path: Path
) -> None:
    prompt = tone(tmp_path / "menu.wav", 1.0)
    got: list[object] = []

    async def handler(leg: SipLeg) -> None:
        await leg.answer()
        got.append(await leg.collect_digits(max_digits=3, timeout=8, prompts=[prompt]))
        await stay(leg)

    h = await make_pool(handler)
    result = await run_uac_async("uac_dtmf.xml", h.target, "+3225551234", hold_ms=500)
    assert result.successful == 1, result.output
    assert len(got) == 1
    assert got[0].digits == "429"  # type: ignore[attr-defined]
    assert got[0].terminated_by == "max_digits"  # type: ignore[attr-defined]


async def test_outbound_dial_busy_no_answer_then_answered_and_bridged(
    make_pool: Callable[..., Awaitable[PoolHarness]],
) -> None:
    busy = Uas("uas_busy.xml", free_port_range(1))
    silent = Uas("uas_noanswer.xml", free_port_range(1))
    answering = Uas("uas_answer.xml", free_port_range(1))
    results: list[object] = []
    try:

        async def handler(leg: SipLeg) -> None:
            leg.account = "acme"
            await leg.answer()
            results.append(await leg.dial([f"sip:+3226001@{busy.uri_host}"], ring_timeout=5))
            results.append(await leg.dial([f"sip:+3226002@{silent.uri_host}"], ring_timeout=1.0))
            dialled = await leg.dial([f"sip:+3226003@{answering.uri_host}"], ring_timeout=5)
            results.append(dialled)
            assert dialled.answered is not None
            await asyncio.sleep(0.5)
            await dialled.answered.hangup()
            results.append(await leg.wait_bridge_end())
            await stay(leg)

        h = await make_pool(handler)
        usage: list[dict[str, object] | None] = []
        h.pool.leg_ended_hooks.append(lambda leg: usage.append(call_usage(leg)))
        result = await run_uac_async("uac_call.xml", h.target, "+3225551234", hold_ms=6000)
        assert result.successful == 1, result.output
        # sipp has its 200 for the BYE; the worker's event for it may still be on its way.
        assert await h.legs[0].wait_until(lambda: h.legs[0].ended, 5)
    finally:
        outputs = [u.stop() for u in (busy, silent, answering)]
    # One `call` usage event per leg, each with its own id; only answered legs have answered_at.
    events = {e["id"]: e for e in usage if e is not None}
    assert len(events) == 4
    inbound = next(e for e in events.values() if e["direction"] == "inbound")
    assert inbound["to"] == "+3225551234" and inbound["answered_at"] is not None
    dialled = sorted((e["to"], e["parent_call_id"], e["answered_at"] is not None)
                     for e in events.values() if e["direction"] == "outbound")  # fmt: skip
    call_id = str(inbound["id"]).removesuffix(":leg")
    # Every leg is a call of its own (CA + 32 hex), the dialled ones children of the inbound.
    assert all(re.fullmatch(r"CA[0-9a-f]{32}:leg", i) for i in events), list(events)
    assert dialled == [
        ("+3226001", call_id, False),
        ("+3226002", call_id, False),
        ("+3226003", call_id, True),
    ]
    assert all(e["account"] == "acme" for e in events.values())
    assert len(results) == 4, outputs
    first, second, third, who = results
    assert first.outcome == "busy" and first.attempts[0].sip_status == 486  # type: ignore[attr-defined]
    assert second.outcome == "no-answer"  # type: ignore[attr-defined]
    assert second.attempts[0].reason == "ring_timeout"  # type: ignore[attr-defined]
    assert third.outcome == "completed"  # type: ignore[attr-defined]
    assert who == "callee"


async def test_originate_outcomes_and_refusal_when_every_slot_is_taken(
    make_pool: Callable[..., Awaitable[PoolHarness]],
) -> None:
    busy = Uas("uas_busy.xml", free_port_range(1))
    silent = Uas("uas_noanswer.xml", free_port_range(1), calls=10)
    answering = Uas("uas_answer.xml", free_port_range(1))
    try:

        async def never(leg: SipLeg) -> None:
            await leg.hangup(404)

        h = await make_pool(never)
        originator = PoolOriginator(h.pool)
        leg, attempt = await originator.originate(
            f"sip:+3226003@{answering.uri_host}", "+3225550100", ring_timeout=5
        )
        assert leg is not None and attempt.outcome == "completed"
        await leg.hangup()
        assert leg.ended and leg.billable_seconds >= 0
        leg, attempt = await originator.originate(
            f"sip:+3226001@{busy.uri_host}", "+3225550100", ring_timeout=5
        )
        assert leg is None and (attempt.outcome, attempt.sip_status) == ("busy", 486)
        leg, attempt = await originator.originate(
            f"sip:+3226002@{silent.uri_host}", "+3225550100", ring_timeout=0.5
        )
        assert leg is None and attempt.outcome == "no-answer"

        # Four ringing calls fill the only worker; the fifth is refused with a reason.
        ringing = [h.pool.originate(f"sip:+32260{n}@{silent.uri_host}", None) for n in range(4)]
        with pytest.raises(NoFreeSlot, match="all 4 call slots are in use"):
            h.pool.originate(f"sip:+3226099@{silent.uri_host}", None)
        for ring in ringing:
            await ring.hangup(487)
        assert h.pool.active_calls == 0
    finally:
        for u in (busy, silent, answering):
            u.stop()


async def test_killed_worker_ends_its_calls_as_worker_lost_and_comes_back(
    make_pool: Callable[..., Awaitable[PoolHarness]],
) -> None:
    states: list[tuple[int, bool]] = []

    async def handler(leg: SipLeg) -> None:
        await leg.answer()
        await stay(leg)

    h = await make_pool(handler)
    h.pool.on_worker_state.append(lambda index, up: states.append((index, up)))
    restarts = metrics.WORKER_RESTARTS._value.get()
    call = asyncio.ensure_future(
        run_uac_async("uac_call.xml", h.target, "+3225551234", hold_ms=8000, timeout=20)
    )
    for _ in range(100):
        if h.legs and h.legs[0].answered:
            break
        await asyncio.sleep(0.05)
    worker = h.pool.workers[0]
    assert worker.proc is not None
    os.kill(worker.proc.pid, signal.SIGKILL)
    for _ in range(100):
        if h.legs[0].ended:
            break
        await asyncio.sleep(0.05)
    assert h.legs[0].cause == "worker_lost"
    for _ in range(200):
        if h.pool.up == 1:
            break
        await asyncio.sleep(0.05)
    assert h.pool.up == 1
    assert states == [(0, False), (0, True)]
    assert metrics.WORKER_RESTARTS._value.get() == restarts + 1
    call.cancel()
    # The restarted worker takes calls again.
    result = await run_uac_async("uac_call.xml", h.target, "+3225551234", hold_ms=200)
    assert result.successful == 1, result.output


async def test_drain_hangs_up_calls_after_the_grace_period(
    make_pool: Callable[..., Awaitable[PoolHarness]],
) -> None:
    async def handler(leg: SipLeg) -> None:
        await leg.answer()
        await stay(leg)

    h = await make_pool(handler)
    call = asyncio.ensure_future(
        run_uac_async("uac_call.xml", h.target, "+3225551234", hold_ms=20000, timeout=25)
    )
    for _ in range(100):
        if h.legs and h.legs[0].answered:
            break
        await asyncio.sleep(0.05)
    started = asyncio.get_running_loop().time()
    await h.pool.stop(grace=0.5)
    took = asyncio.get_running_loop().time() - started
    assert h.legs[0].ended and h.legs[0].final_status is not None
    assert all(w.proc is not None and w.proc.returncode == 0 for w in h.pool.workers)
    assert took < 6
    result = await call
    assert result.successful + result.failed == 1


@pytest.mark.parametrize(("password", "outcome"), [("s3cret", "completed"), ("wrong", "failed")])
async def test_trunk_digest_credentials_answer_the_carriers_challenge(
    make_pool: Callable[..., Awaitable[PoolHarness]], password: str, outcome: str
) -> None:
    carrier = Uas("uas_auth.xml", free_port_range(1), calls=1)
    try:

        async def never(leg: SipLeg) -> None:
            await leg.hangup(404)

        h = await make_pool(
            never, trunk=carrier.uri_host, trunk_user="flexvoice-demo", trunk_password=password
        )
        leg, attempt = await PoolOriginator(h.pool).originate(
            "+3226001234", "+3225550100", ring_timeout=5
        )
        assert attempt.outcome == outcome, attempt
        if leg is not None:
            await leg.hangup()
        else:
            assert attempt.sip_status == 403
    finally:
        carrier.stop()


async def test_blind_transfer_with_refer_ends_our_leg_when_the_transferee_reports_200(
    make_pool: Callable[..., Awaitable[PoolHarness]],
) -> None:
    async def handler(leg: SipLeg) -> None:
        await leg.answer()
        await leg.transfer("sip:+32475123456@127.0.0.1:5999")

    h = await make_pool(handler)
    result = await run_uac_async("uac_transferred.xml", h.target, "+3225551234")
    assert result.successful == 1, result.output
    assert await h.legs[0].wait_until(lambda: h.legs[0].ended, 5)
    assert h.legs[0].answered and h.legs[0].cause == "transferred"


async def test_early_media_plays_a_prompt_before_answering(
    make_pool: Callable[..., Awaitable[PoolHarness]], tmp_path: Path
) -> None:
    prompt = tone(tmp_path / "early.wav", 1.0)
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    rtp.setblocking(False)
    heard_before_answer: list[int] = []

    async def handler(leg: SipLeg) -> None:
        await leg.ring(early_media=True)  # 183 Session Progress with SDP
        await leg.play([prompt])
        packets = 0
        with contextlib.suppress(BlockingIOError):
            while True:
                rtp.recv(2048)
                packets += 1
        heard_before_answer.append(packets)
        await leg.hangup(480, "Temporarily Unavailable")

    h = await make_pool(handler)
    result = await run_uac_async(
        "uac_expect_480.xml", h.target, "+3225551234", keys={"rtp_port": str(rtp.getsockname()[1])}
    )
    rtp.close()
    assert result.successful == 1, result.output
    assert not h.legs[0].answered
    assert heard_before_answer and heard_before_answer[0] >= 25


async def test_a_declined_transfer_is_reported_at_once_and_the_call_stays_ours(
    make_pool: Callable[..., Awaitable[PoolHarness]],
) -> None:
    errors: list[str] = []

    async def handler(leg: SipLeg) -> None:
        await leg.answer()
        started = asyncio.get_running_loop().time()
        try:
            await leg.transfer("sip:+32475123456@127.0.0.1:5999")
        except RuntimeError as exc:
            errors.append(f"{exc} after {asyncio.get_running_loop().time() - started:.1f}s")
        assert not leg.ended
        await leg.hangup()

    h = await make_pool(handler)
    result = await run_uac_async("uac_transfer_declined.xml", h.target, "+3225551234")
    assert result.successful == 1, result.output
    assert len(errors) == 1 and "603" in errors[0], errors
    assert float(errors[0].rsplit(" ", 1)[1].rstrip("s")) < 5
    assert h.legs[0].cause == "normal"


async def test_a_slot_freed_by_a_call_end_takes_an_originate_at_once(
    make_pool: Callable[..., Awaitable[PoolHarness]],
) -> None:
    # pjsua frees a call's slot a little after it reports the call's end; an originate sent
    # in that gap must still ring (the worker retries it), not fail with "too many calls".
    silent = Uas("uas_noanswer.xml", free_port_range(1), calls=20)
    try:

        async def never(leg: SipLeg) -> None:
            await leg.hangup(404)

        h = await make_pool(never)
        ringing = [h.pool.originate(f"sip:+32260{n}@{silent.uri_host}", None) for n in range(4)]
        for leg in ringing:
            await leg.wait_until(lambda leg=leg: leg.machine.state == "early", 10)
        for round_ in range(3):
            await ringing[0].hangup(487)
            ringing[0] = h.pool.originate(f"sip:+32261{round_}@{silent.uri_host}", None)
            await ringing[0].wait_until(
                lambda: ringing[0].ended or ringing[0].machine.state == "early", 10
            )
            assert not ringing[0].ended, ringing[0].machine.final_status
        for leg in ringing:
            await leg.hangup(487)
        assert h.pool.active_calls == 0
    finally:
        silent.stop()

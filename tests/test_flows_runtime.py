"""The flow runtime on fake legs: menu choices, Smart Routing failover, hours, webhooks,
Voice Continuity, queues, failures, usage events and reload semantics. No SIP, no sleeping:
the virtual clock jumps."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from flexvoice.api.dialer import Dialer
from flexvoice.callcontrol import DialAttempt
from flexvoice.calls import CallRegistry
from flexvoice.flows.webhooks import AiohttpWebhooks
from flexvoice.storage.sqlite import connect
from tests.conftest import crm_flow
from tests.fakeleg import BlockingLeg, Script, harness

MONDAY_10 = datetime.fromisoformat("2026-03-02T10:00:00+01:00")


async def test_menu_choice_reaches_the_orders_line(tmp_path: Path) -> None:
    h = harness(tmp_path)
    leg = h.leg(Script(digits=["1"], dial=["answered"]))
    reason = await h.call("bakery-main", leg)
    assert h.observer.steps() == ["check_hours", "menu", "orders"]
    assert "dial +3226009999 (20s): +3226009999 completed 200" in leg.actions
    assert reason.startswith("+3226009999 answered; callee hung up")
    assert leg.ended == "BYE"
    # The legs' `call` usage events are the SIP layer's (tests/test_sip_pool.py); a flow
    # that reroutes nothing and records nothing writes none.
    assert h.sink.ids() == []


async def test_open_hours_why_names_the_range(tmp_path: Path) -> None:
    h = harness(tmp_path)
    await h.call("bakery-main", h.leg(Script(digits=["2", "0"], dial=["answered"])))
    assert h.observer.steps()[:4] == ["check_hours", "menu", "shop", "menu"]
    assert h.observer.whys()[1] == (
        "open: Mon 2026-03-02 10:00 Europe/Brussels is within mon-fri 08:30-18:00"
    )
    assert h.observer.whys()[2] == "digit 2"


async def test_busy_hunts_on_then_takes_on_busy(tmp_path: Path) -> None:
    h = harness(tmp_path, tariff="vms-smart-routing")
    leg = h.leg(Script(digits=["1"], dial=["busy", "busy"]))
    await h.call("bakery-main", leg)
    assert h.observer.steps() == ["check_hours", "menu", "orders", "voicemail", "bye", "hangup"]
    why = h.observer.whys()[3]
    assert why.endswith("-> on_busy")
    assert "+3226009999 busy (486 Busy Here)" in why
    ids = h.sink.ids()
    assert ids[0] == "sim-1:reroute"
    assert "sim-1:rec-voicemail" in ids
    reroute = h.sink.events[0]
    assert reroute["number"] == "+3226000000" and reroute["kind"] == "reroute"
    assert reroute["account"] == "acme"


async def test_stop_on_ends_the_hunt_at_once(tmp_path: Path) -> None:
    h = harness(tmp_path)
    leg = h.leg(Script(digits=["1"], dial=["declined", "answered"]))
    await h.call("bakery-main", leg)
    assert h.observer.steps()[3] == "voicemail"
    assert "in stop_on: the hunt stops" in h.observer.whys()[3]
    assert not any("+32475123456" in a for a in leg.actions)
    assert "sim-1:reroute" not in h.sink.ids()  # not on the VMS tariff


async def test_no_answer_after_ring_timeout(tmp_path: Path) -> None:
    h = harness(tmp_path)
    leg = h.leg(Script(digits=["1"], dial=["no-answer", "no-answer"]))
    before = h.clock.now()
    await h.call("bakery-main", leg)
    assert h.observer.steps()[3] == "voicemail"
    assert h.observer.whys()[3].endswith("-> on_no_answer")
    assert (h.clock.now() - before).total_seconds() >= 40  # two 20 s ring timeouts


async def test_closed_hours_take_when_closed(tmp_path: Path) -> None:
    h = harness(tmp_path, at=datetime.fromisoformat("2026-12-25T10:00:00+01:00"))
    leg = h.leg(Script())
    await h.call("bakery-main", leg)
    assert h.observer.steps()[:3] == ["check_hours", "closed", "voicemail"]
    assert h.observer.whys()[1] == (
        "closed: Fri 2026-12-25 10:00 Europe/Brussels is a closing day (2026-12-25)"
    )
    assert "play nl/closed.wav" in leg.actions


async def test_saturday_afternoon_is_closed(tmp_path: Path) -> None:
    h = harness(tmp_path, at=datetime.fromisoformat("2026-03-07T13:00:00+00:00"))
    await h.call("bakery-main", h.leg(Script()))
    assert h.observer.whys()[1].startswith("closed: Sat 2026-03-07 14:00 Europe/Brussels")


async def test_menu_retries_then_on_failure(tmp_path: Path) -> None:
    h = harness(tmp_path)
    leg = h.leg(Script(digits=["9", "", "7"], dial=["answered"]))
    await h.call("bakery-main", leg)
    assert h.observer.steps()[:3] == ["check_hours", "menu", "staff"]
    assert h.observer.whys()[2] == "no valid choice after 3 tries (key 9, no input, key 7)"
    assert "play nl/invalid_choice.wav" in leg.actions
    assert "play nl/no_input.wav" in leg.actions


async def test_webhook_decides_the_branch(
    tmp_path: Path, crm: tuple[str, list[Any], dict[str, Any]]
) -> None:
    url, seen, answer = crm
    answer["body"] = {"next": "vip", "variables": {"tier": "gold"}}
    client = AiohttpWebhooks()
    h = harness(tmp_path, {"bilingual": crm_flow(url)}, webhooks=client)
    try:
        leg = h.leg(Script(digits=["2"], dial=["answered"]), caller="+32470111222")
        await h.call("bilingual-line", leg)
    finally:
        await client.close()
    assert h.observer.steps() == ["choose_language", "french", "crm", "vip"]
    assert h.observer.whys()[3] == "webhook answered next=vip with tier=gold"
    assert seen[0]["from"] == "+32470111222"
    assert seen[0]["language"] == "fr"
    assert seen[0]["step"] == "crm"


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (500, {}, "answered HTTP 500"),
        (200, {"next": "nowhere"}, "the answer names no step of this flow"),
        (200, {"next": "orders"}, "the answer names a step not in next_steps"),
    ],
)
async def test_webhook_failure_takes_on_failure(
    tmp_path: Path,
    crm: tuple[str, list[Any], dict[str, Any]],
    status: int,
    body: dict[str, Any],
    reason: str,
) -> None:
    url, _, answer = crm
    answer.update(status=status, body=body)
    client = AiohttpWebhooks()
    h = harness(tmp_path, {"bilingual": crm_flow(url)}, webhooks=client)
    try:
        await h.call("bilingual-line", h.leg(Script(digits=["1", "1"], dial=["answered"])))
    finally:
        await client.close()
    assert h.observer.steps()[:4] == ["choose_language", "dutch", "crm", "menu"]
    assert reason in h.observer.whys()[3]
    assert h.observer.whys()[3].endswith("-> on_failure")


async def test_webhook_down_takes_on_failure(tmp_path: Path) -> None:
    from flexvoice.system import free_port

    client = AiohttpWebhooks()
    url = f"http://127.0.0.1:{free_port()}/hook"
    h = harness(tmp_path, {"bilingual": crm_flow(url)}, webhooks=client)
    try:
        await h.call("bilingual-line", h.leg(Script(digits=["3", "1"], dial=["answered"])))
    finally:
        await client.close()
    assert h.observer.steps()[3] == "menu"
    assert "cannot reach 127.0.0.1" in h.observer.whys()[3]


async def test_continuity_on_then_off_between_two_calls(tmp_path: Path) -> None:
    h = harness(tmp_path, tariff="vms-smart-routing")
    h.continuity["+3226000000"] = ("+32475123456", True)
    first = h.leg(Script(), call_id="c1")
    reason = await h.call("office-continuity", first)
    assert first.ended == "302 to +32475123456"
    assert first.actions == ["redirect 302 to +32475123456"]
    assert h.observer.steps("c1") == ["continuity"]
    assert "Voice Continuity" in reason
    assert h.sink.ids() == ["c1:reroute"]

    h.continuity["+3226000000"] = ("+32475123456", False)
    second = h.leg(Script(dial=["answered", "no-answer"]), call_id="c2")
    await h.call("office-continuity", second)
    assert h.observer.steps("c2") == ["office"]
    assert second.ended == "BYE"


async def test_continuity_only_for_its_number(tmp_path: Path) -> None:
    h = harness(tmp_path)
    h.continuity["+3226000001"] = ("+32475123456", True)
    leg = h.leg(Script(dial=["failed", "failed"]))
    await h.call("office-continuity", leg)
    assert h.observer.steps() == ["office", "mobile"]
    assert leg.ended == "302 to +32475123456"


@pytest.mark.process
async def test_queue_overflow_after_max_wait(tmp_path: Path) -> None:
    h = harness(tmp_path, tariff="vms-smart-routing")
    leg = h.leg(Script(dial=["busy"] * 3 + ["no-answer"] * 20))
    await h.call("support-line", leg)
    steps = h.observer.steps()
    assert steps[:4] == ["welcome", "hunt", "wait", "busy"]
    assert "-> on_overflow" in h.observer.whys()[3]
    assert any(a.startswith("play en/") or "music" in a for a in leg.actions)
    assert h.sink.ids().count("sim-1:reroute") == 1  # one per call, though rerouted twice


@pytest.mark.process
async def test_queue_agent_takes_the_call(tmp_path: Path) -> None:
    h = harness(tmp_path)
    leg = h.leg(Script(dial=["busy", "busy", "busy", "no-answer", "answered"]))
    await h.call("support-line", leg)
    assert h.observer.steps() == ["welcome", "hunt", "wait", "bye", "end"]
    assert "took the call" in h.observer.whys()[3]
    assert any(a.startswith("music ") for a in leg.actions)


@pytest.mark.process
async def test_switch_on_caller_prefix_and_language(tmp_path: Path) -> None:
    h = harness(tmp_path, at=datetime.fromisoformat("2026-03-07T20:00:00+01:00"))
    leg = h.leg(Script(), caller="+33612345678")
    await h.call("after-hours", leg)
    assert h.observer.steps() == ["hours", "language", "french", "message", "thanks"]
    assert h.observer.whys()[2] == "caller='+33612345678' starts with '+33'"
    assert "play fr/thanks_bye.wav" in leg.actions
    assert (tmp_path / "tts" / "fr").is_dir()  # the say: text was synthesized and cached


@pytest.mark.process
async def test_missing_prompt_at_run_time_apologizes_and_hangs_up(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    (prompts / "en").mkdir(parents=True)
    (prompts / "en" / "hello.wav").write_bytes(
        (Path(__file__).parent.parent / "ivr_prompts/en/closed.wav").read_bytes()
    )
    flow = (
        "flow: p\nstart: a\nsteps:\n  a:\n    play: {prompt: hello, then: b}\n  b:\n    hangup:\n"
    )
    h = harness(tmp_path, {"p": flow}, prompts_dir=prompts)
    (prompts / "en" / "hello.wav").unlink()
    leg = h.leg()
    reason = await h.call("p", leg)
    assert "prompt 'hello' is missing" in reason
    assert leg.actions[0] == "answer"
    assert leg.actions[1].startswith("play en/")  # the spoken apology (synthesized)
    assert leg.ended == "BYE"


async def test_on_error_branch_is_taken(tmp_path: Path) -> None:
    flow = (
        "flow: p\nstart: a\nsteps:\n  a:\n    webhook: {url: 'http://x.invalid/', then: b,"
        " on_error: c}\n  b:\n    hangup:\n  c:\n    hangup: {status: 486}\n"
    )
    h = harness(tmp_path, {"p": flow})  # no webhook client: the step fails
    leg = h.leg()
    await h.call("p", leg)
    assert h.observer.steps() == ["a", "c"]
    assert leg.ended == "486"


async def test_endless_loop_is_stopped(tmp_path: Path) -> None:
    flow = "flow: p\nstart: a\nsteps:\n  a:\n    goto: b\n  b:\n    goto: a\n"
    h = harness(tmp_path, {"p": flow})
    h.runtime.deps.max_steps = 50
    leg = h.leg()
    reason = await h.call("p", leg)
    assert "more than 50 steps" in reason
    assert leg.ended == "BYE"


async def test_caller_hangup_ends_the_task(tmp_path: Path) -> None:
    h = harness(tmp_path)
    leg = h.leg(Script(hangup_after_inputs=0))
    reason = await h.call("bakery-main", leg)
    assert reason.startswith("the caller hung up during menu")
    assert h.sink.ids() == []  # the leg's call event is the SIP layer's
    assert h.observer.events[-1][1] == "flow_end"


async def test_unknown_flow_is_refused_with_503(tmp_path: Path) -> None:
    h = harness(tmp_path)
    leg = h.leg()
    reason = await h.call("nope", leg)
    assert reason == "no flow named 'nope'"
    assert leg.ended == "503"


@pytest.mark.process
async def test_gather_into_variable_and_interpolate(tmp_path: Path) -> None:
    flow = """\
flow: g
start: ask
steps:
  ask:
    gather: {say: "Your number?", min_digits: 3, max_digits: 6, then: check}
  check:
    switch: {variable: digits, cases: {"1234": ok}, default: ask}
  ok:
    set: {variables: {greeting: "client {digits}"}, then: bye}
  bye:
    hangup:
"""
    h = harness(tmp_path, {"g": flow})
    leg = h.leg(Script(digits=["12", "1234#"]))
    await h.call("g", leg)
    assert h.observer.steps() == ["ask", "check", "ok", "bye"]
    assert h.observer.whys()[1] == "digits=1234"
    assert h.observer.whys()[3] == "set greeting=client 1234"


async def test_reload_valid_invalid_and_running_call_keeps_its_version(
    tmp_path: Path,
) -> None:
    v1 = """\
flow: r
start: m
steps:
  m:
    menu: {prompt: welcome_menu, options: {"1": one}}
  one:
    play: {prompt: closed}
"""
    h = harness(tmp_path, {"r": v1})
    path = h.flows_dir / "r.yaml"
    running = BlockingLeg(Script(digits=["1"]), h.clock, call_id="old")
    task = h.runtime.start_call(running, "r")
    await asyncio.wait_for(running.waiting.wait(), 5)

    # an invalid edit is refused; the last good version keeps serving
    path.write_text(v1.replace("prompt: closed", "promt: closed"))
    problems = h.runtime.scan()
    assert [p.line for p in problems if p.severity == "error"] == [7]
    assert h.runtime.flows["r"].steps["one"].describe() == "play closed"

    # a valid edit serves the next call
    path.write_text(v1.replace("prompt: closed", "prompt: thanks_bye") + " ")
    assert h.runtime.scan() == []
    new = h.leg(Script(digits=["1"]), call_id="new")
    await h.call("r", new)
    assert "play en/thanks_bye.wav" in new.actions

    # the call that started before both edits finishes on its own version
    running.release.set()
    await asyncio.wait_for(task, 5)
    assert "play en/closed.wav" in running.actions


async def test_watcher_picks_up_a_new_file_and_a_removal(tmp_path: Path) -> None:
    h = harness(tmp_path, {"a": "flow: a\nstart: x\nsteps:\n  x:\n    hangup:\n"})
    h.runtime.poll_interval = 0.02
    await h.runtime.start()
    try:
        (h.flows_dir / "b.yaml").write_text("flow: b\nstart: x\nsteps:\n  x:\n    hangup:\n")
        (h.flows_dir / "a.yaml").unlink()
        for _ in range(200):
            if "b" in h.runtime.flows and "a" not in h.runtime.flows:
                break
            await asyncio.sleep(0.01)
        assert sorted(h.runtime.flows) == ["b"]
    finally:
        await h.runtime.stop()


async def test_two_files_with_one_flow_name(tmp_path: Path) -> None:
    text = "flow: same\nstart: x\nsteps:\n  x:\n    hangup:\n"
    h = harness(tmp_path, {"a": text})
    (h.flows_dir / "b.yaml").write_text(text)
    problems = h.runtime.scan()
    assert [str(p) for p in problems] == [
        f"{h.flows_dir}/b.yaml:1:1: flow name 'same' is already used by {h.flows_dir}/a.yaml"
    ]


async def test_whole_call_and_bridged_recordings_are_metered(tmp_path: Path) -> None:
    flow = """\
flow: rec
start: all
steps:
  all:
    record: {mode: call, then: desk}
  desk:
    dial: {targets: ["+3226009999"], record: true}
"""
    h = harness(tmp_path, {"rec": flow})
    leg = h.leg(Script(dial=["answered"]))
    await h.call("rec", leg)
    assert h.sink.ids() == ["sim-1:rec-desk", "sim-1:rec-all"]
    whole = h.sink.events[1]
    assert whole["kind"] == "recording" and whole["call_id"] == "sim-1"
    assert whole["started_at"] < whole["ended_at"]
    assert (tmp_path / "recordings").is_dir()


async def test_start_call_without_start_loads_the_flows(tmp_path: Path) -> None:
    from flexvoice.flows.runtime import FlowRuntime
    from tests.fakeleg import PROMPTS, ScriptedLeg

    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "a.yaml").write_text("flow: a\nstart: x\nsteps:\n  x:\n    hangup: {status: 486}\n")
    runtime = FlowRuntime(flows, PROMPTS)
    leg = ScriptedLeg()
    assert await runtime.start_call(leg, "a") == "hangup step"
    assert leg.ended == "486"


async def test_flows_write_reroute_and_recording_events_not_call_events(tmp_path: Path) -> None:
    h = harness(tmp_path, tariff="vms-smart-routing")
    await h.call("bakery-main", h.leg(Script(digits=["1"], dial=["busy", "busy"])))
    assert h.sink.ids() == ["sim-1:reroute", "sim-1:rec-voicemail"]


async def test_a_call_moved_to_another_flow_stays_up_and_runs_it(tmp_path: Path) -> None:
    """POST /v1/calls/{id} {"flow": ...}: the leg is not hung up, the next flow runs on it."""
    menu = """flow: waiting
start: ask
steps:
  ask:
    menu: {prompt: closed, options: {"1": bye}, timeout: 5s, retries: 0}
  bye:
    hangup: {}
"""
    thanks = "flow: thanks\nstart: say\nsteps:\n  say:\n    play: {prompt: thanks_bye}\n"
    h = harness(tmp_path, {"waiting": menu, "thanks": thanks})
    registry = CallRegistry(connect(tmp_path / "calls.db"))
    leg = BlockingLeg(Script(digits=["1"]), h.clock, call_id="CA" + "1" * 32)

    class Originator:
        async def originate(self, *a: Any, **kw: Any) -> tuple[Any, DialAttempt]:
            return leg, DialAttempt("+32475123456", "answered", 200, "OK")

    call = registry.create(
        account="acme",
        direction="outbound",
        from_number="+3226000000",
        to_number="+32475123456",
        flow="waiting",
        call_id=leg.call_id,
    )
    dialer = Dialer(registry)
    dialer.place(call, Originator(), h.runtime, ring_timeout=5, variables={})  # type: ignore[arg-type]
    await asyncio.wait_for(leg.waiting.wait(), 5)
    assert await dialer.move(call, h.runtime, "thanks")
    for _ in range(200):  # the next flow plays its prompt, then ends the call itself
        if leg.ended is not None:
            break
        await asyncio.sleep(0.01)
    assert "play en/thanks_bye.wav" in leg.actions
    assert leg.ended == "BYE" and "refuse with 503" not in leg.actions
    trace = registry.events(call.id)
    ends = [e["data"]["reason"] for e in trace if e["kind"] == "flow_end"]
    assert ends[0] == "moved to another flow during ask", ends
    assert [e["data"]["flow"] for e in trace if e["kind"] == "moved"] == ["thanks"]
    await asyncio.gather(*(live.task for live in dialer.live.values()), return_exceptions=True)

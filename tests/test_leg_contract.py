"""The contract between the scripted leg and the real one: the same scripts (answer, busy, no
answer, DTMF 1-2-#, the callee hanging up first) run on `ScriptedLeg` (flows simulate and the
unit tests) and on `SipLeg` through pjsua2 and sipp, and must tell the observer the same
story - per leg, the same `leg`, `ringing`, `answered`, `ended` (status, reason, outcome,
ended_by) and the same flow steps. Then what the fast tests show about a flow holds on SIP.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flexvoice.flows.deps import FlowDeps
from flexvoice.flows.runtime import FlowRuntime
from flexvoice.sip.leg import SipLeg
from flexvoice.sip.pool import PoolSettings, WorkerPool
from tests.conftest import REPO, free_port_range
from tests.fakeleg import Observer, Script, harness
from tests.sipptool import Uas, run_uac_async

pytestmark = pytest.mark.sip

BYE = "  bye:\n    hangup: {}\n"
SORRY = "  sorry:\n    play: {prompt: thanks_bye, then: bye}\n"


def dial_flow(name: str, number: str, extra: str) -> str:
    return (
        f"flow: {name}\nstart: ring\nsteps:\n  ring:\n"
        f'    dial: {{targets: ["{number}"], {extra}}}\n' + SORRY + BYE
    )


@dataclass(frozen=True)
class Case:
    flow: str
    text: str
    script: Script  # what the scripted leg is told happens
    caller: str = "uac_until_bye.xml"  # what sipp does as the caller


# The carrier's sipp (uas_carrier_by_number.xml) is busy for ...1, silent for ...2, answers and
# hangs up first for ...4.
CASES = {
    "answer": Case(
        "c-answer",
        "flow: c-answer\nstart: hello\nsteps:\n  hello:\n"
        "    play: {prompt: thanks_bye, then: bye}\n" + BYE,
        Script(),
    ),
    "busy": Case(
        "c-busy",
        dial_flow("c-busy", "+32470555001", "ring_timeout: 3s, on_busy: sorry"),
        Script(dial=["busy"]),
    ),
    "no-answer": Case(
        "c-noanswer",
        dial_flow("c-noanswer", "+32470555002", "ring_timeout: 2s, on_no_answer: sorry"),
        Script(dial=["no-answer"]),
    ),
    "dtmf": Case(
        "c-dtmf",
        "flow: c-dtmf\nstart: ask\nsteps:\n  ask:\n"
        "    gather: {prompt: thanks_bye, max_digits: 3, timeout: 5s,\n"
        "             then: bye, on_failure: sorry}\n" + SORRY + BYE,
        Script(digits=["12#"]),
        caller="uac_dtmf_12hash.xml",
    ),
    "callee-hangs-up": Case(
        "c-calleebye",
        dial_flow("c-calleebye", "+32470555004", "ring_timeout: 5s, then: sorry"),
        Script(dial=["answered"], talk_seconds=1),
    ),
}


def story(events: list[tuple[str, str, dict[str, Any]]]) -> dict[str, list[tuple[Any, ...]]]:
    """Per leg ("call", "leg1", ...), what the observer heard, without ids and times."""
    names: dict[str, str] = {}
    told: dict[str, list[tuple[Any, ...]]] = {}
    for call_id, kind, data in events:
        if kind not in ("leg", "ringing", "answered", "ended", "step"):
            continue
        if call_id not in names:
            names[call_id] = "call" if not names else f"leg{len(names)}"
        said: tuple[Any, ...]
        if kind == "leg":
            said = ("leg", data["to"])
        elif kind == "ended":
            keys = ("sip_status", "reason", "outcome", "ended_by")
            said = ("ended", *(data.get(k) for k in keys))
        elif kind == "step":
            said = ("step", data["step"])
        else:
            said = (kind, data.get("sip_status"))
        told.setdefault(names[call_id], []).append(said)
    return told


async def on_scripted_leg(tmp_path: Path, case: Case) -> dict[str, list[tuple[Any, ...]]]:
    (tmp_path / "fake").mkdir()
    h = harness(tmp_path / "fake", {case.flow: case.text})
    leg = h.leg(case.script, caller="+3225550100", callee="+3225551001")
    leg.observer = h.observer
    await h.call(case.flow, leg, account="acme")
    return story(h.observer.events)


async def on_sip_leg(tmp_path: Path, case: Case) -> dict[str, list[tuple[Any, ...]]]:
    flows = tmp_path / "real"
    flows.mkdir()
    (flows / f"{case.flow}.yaml").write_text(case.text)
    observer = Observer()
    deps = FlowDeps(
        observer=observer,
        recordings_dir=tmp_path / "recordings",
        tts_cache_dir=tmp_path / "tts",
    )
    runtime = FlowRuntime(flows, REPO / "ivr_prompts", deps)
    assert not [p for p in runtime.scan() if p.severity == "error"]
    done: asyncio.Queue[str] = asyncio.Queue()

    async def on_incoming(leg: SipLeg) -> None:
        leg.account = "acme"
        leg.observer = observer
        await done.put(await runtime.start_call(leg, case.flow, account="acme"))

    carrier = Uas("uas_carrier_by_number.xml", free_port_range(1), calls=2)
    settings = PoolSettings(
        count=1,
        base_port=free_port_range(1),
        rtp_base=random.randrange(30000, 50000, 2),
        trunk=carrier.uri_host,
    )
    pool = WorkerPool(settings, on_incoming)
    await pool.start()
    try:
        target = f"127.0.0.1:{settings.base_port}"
        result = await run_uac_async(case.caller, target, "+3225551001")
        assert result.successful == 1, result.output
        await asyncio.wait_for(done.get(), 10)
        for _ in range(100):  # every leg's end reported (a child's BYE may still be on its way)
            ends = sum(1 for _c, kind, _d in observer.events if kind == "ended")
            if ends == 1 + sum(1 for _c, kind, _d in observer.events if kind == "leg"):
                break
            await asyncio.sleep(0.05)
    finally:
        await pool.stop(grace=0)
        carrier.stop()
    return story(observer.events)


@pytest.mark.parametrize("name", list(CASES))
async def test_scripted_and_real_legs_tell_the_same_story(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    fake = await on_scripted_leg(tmp_path, case)
    real = await on_sip_leg(tmp_path, case)
    assert real == fake
    # Each leg: at most one answered, exactly one ended.
    for told in real.values():
        kinds = [said[0] for said in told]
        assert kinds.count("ended") == 1 and kinds.count("answered") <= 1, told

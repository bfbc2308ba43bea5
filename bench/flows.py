"""Flow benchmarks: calls per second through the interpreter on fake legs (no SIP, virtual
clock), and validator time per flow file. `python -m bench flows [--quick]`."""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench import REPO
from flexvoice.flows.deps import FlowDeps
from flexvoice.flows.runtime import FlowRuntime
from flexvoice.flows.simulate import Script, ScriptedLeg, VirtualClock
from flexvoice.flows.validate import validate_file

SCENARIOS = {
    # flow, digits, dial outcomes: a menu choice answered, and a failover to voicemail
    "bakery menu -> orders answered": ("bakery-main", ["1"], ["answered"]),
    "bakery busy, no-answer -> voicemail": ("bakery-main", ["1"], ["busy", "no-answer"]),
    "support hunt -> queue -> agent": ("support-line", [], ["busy"] * 3 + ["answered"]),
}


class _Sink:
    def __init__(self) -> None:
        self.count = 0

    def record(self, event: dict[str, object]) -> None:
        self.count += 1


async def _calls_per_second(flow: str, digits: list[str], dial: list[str], n: int) -> float:
    clock = VirtualClock(datetime.fromisoformat("2026-03-02T10:00:00+01:00"))
    with tempfile.TemporaryDirectory() as tmp:
        deps = FlowDeps(
            usage_sink=_Sink(),
            account_for=lambda number: "bench",
            clock=clock.now,
            sleep=clock.sleep,
            recordings_dir=Path(tmp),
            tts_cache_dir=Path(tmp),
        )
        runtime = FlowRuntime(REPO / "flows", REPO / "ivr_prompts", deps)
        runtime.scan()
        # Concurrent calls, as a node runs them: one task each.
        batch = 200
        started = time.perf_counter()
        done = 0
        while done < n:
            tasks = [
                runtime.start_call(
                    ScriptedLeg(Script(list(digits), list(dial)), clock, call_id=f"b{done + i}"),
                    flow,
                )
                for i in range(min(batch, n - done))
            ]
            await asyncio.gather(*tasks)
            done += len(tasks)
        return n / (time.perf_counter() - started)


def main(argv: list[str]) -> int:
    import logging

    logging.getLogger("flexvoice").setLevel(logging.WARNING)
    quick = "--quick" in argv
    n = 500 if quick else 3000
    for label, (flow, digits, dial) in SCENARIOS.items():
        rate = asyncio.run(_calls_per_second(flow, digits, dial, n))
        print(f"interpreter  {label:<40} {rate:8.0f} calls/s  ({n} calls)")
    files = sorted((REPO / "flows").glob("*.yaml"))
    rounds = 20 if quick else 100
    for path in files:
        started = time.perf_counter()
        for _ in range(rounds):
            res = validate_file(path, REPO / "ivr_prompts")
            assert res.flow is not None, [str(p) for p in res.problems]
        ms = (time.perf_counter() - started) / rounds * 1000
        print(f"validator    {path.name:<40} {ms:8.2f} ms/file")
    return 0

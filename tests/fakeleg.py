"""Fake call legs and a runtime wired for tests: no SIP, a virtual clock, events collected.

`ScriptedLeg` (the leg `flows simulate` uses) answers from a script; `BlockingLeg` waits at
its first input until the test releases it (for reload-while-in-call tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from flexvoice.callcontrol import DigitsResult
from flexvoice.flows.deps import FlowDeps
from flexvoice.flows.runtime import FlowRuntime
from flexvoice.flows.simulate import Script, ScriptedLeg, VirtualClock
from flexvoice.metering.tariffs import load_tariffs
from tests.conftest import REPO

PROMPTS = REPO / "ivr_prompts"
TARIFFS = load_tariffs(REPO / "metering" / "tariffs")  # the shipped tariffs decide what is billed

__all__ = ["Harness", "Script", "ScriptedLeg", "VirtualClock"]


class Sink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def record(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def ids(self) -> list[str]:
        return [e["id"] for e in self.events]


class Observer:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, object]]] = []

    def call_event(self, call_id: str, kind: str, data: dict[str, object]) -> None:
        self.events.append((call_id, kind, data))

    def steps(self, call_id: str | None = None) -> list[str]:
        return [
            str(d["step"])
            for c, k, d in self.events
            if k == "step" and (call_id is None or c == call_id)
        ]

    def whys(self) -> list[str]:
        return [str(d["why"]) for _, k, d in self.events if k == "step"]


@dataclass
class Harness:
    """A FlowRuntime on a flows folder, with a virtual clock, a sink and an observer."""

    flows_dir: Path
    clock: VirtualClock
    sink: Sink = field(default_factory=Sink)
    observer: Observer = field(default_factory=Observer)
    continuity: dict[str, tuple[str, bool]] = field(default_factory=dict)
    tariff: str | None = None
    webhooks: Any = None
    prompts_dir: Path = PROMPTS
    runtime: FlowRuntime = field(init=False)

    def __post_init__(self) -> None:
        deps = FlowDeps(
            usage_sink=self.sink,
            account_for=lambda number: "acme",
            prices_for=lambda account, kind: (
                self.tariff is not None and TARIFFS[self.tariff].prices(kind, self.clock.now())
            ),
            continuity_for=self.continuity.get,
            webhooks=self.webhooks,
            observer=self.observer,
            clock=self.clock.now,
            sleep=self.clock.sleep,
            recordings_dir=self.flows_dir.parent / "recordings",
            tts_cache_dir=self.flows_dir.parent / "tts",
        )
        self.runtime = FlowRuntime(self.flows_dir, self.prompts_dir, deps)
        problems = [p for p in self.runtime.scan() if p.severity == "error"]
        assert not problems, [str(p) for p in problems]

    def leg(self, script: Script | None = None, **kw: Any) -> ScriptedLeg:
        return ScriptedLeg(script or Script(), self.clock, **kw)

    async def call(self, flow: str, leg: ScriptedLeg, **kw: Any) -> str:
        return await asyncio.wait_for(self.runtime.start_call(leg, flow, **kw), 5)


def harness(tmp_path: Path, flows: dict[str, str] | None = None, **kw: Any) -> Harness:
    """Flows from the repo's flows/ (default) or the given texts, at `at` (a datetime)."""
    flows_dir = tmp_path / "flows"
    flows_dir.mkdir(exist_ok=True)
    if flows is None:
        for path in (REPO / "flows").glob("*.yaml"):
            (flows_dir / path.name).write_text(path.read_text())
    else:
        for name, text in flows.items():
            (flows_dir / f"{name}.yaml").write_text(text)
    at: datetime = kw.pop("at", datetime.fromisoformat("2026-03-02T10:00:00+01:00"))
    return Harness(flows_dir, VirtualClock(at), **kw)


class BlockingLeg(ScriptedLeg):
    """Waits at every input until `release` is set; then answers from the script."""

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self.waiting = asyncio.Event()
        self.release = asyncio.Event()

    async def collect_digits(
        self,
        *,
        max_digits: int,
        timeout: float,
        inter_digit_timeout: float | None = None,
        terminators: str = "#",
        prompts: Sequence[Path] = (),
    ) -> DigitsResult:
        self.waiting.set()
        await self.release.wait()
        return await super().collect_digits(
            max_digits=max_digits,
            timeout=timeout,
            inter_digit_timeout=inter_digit_timeout,
            terminators=terminators,
            prompts=prompts,
        )

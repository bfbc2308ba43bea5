"""Conference rooms on a real worker pool: the one set-up (flows with `conference` steps, the
conference service, links between workers, one usage event per leg as the node writes it)
shared by tests/test_conference_sip.py, tests/test_conference_edge.py and bench/conference.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from flexvoice.conference.service import ConferenceService
from flexvoice.flows.deps import FlowDeps
from flexvoice.flows.runtime import FlowRuntime
from flexvoice.sip.beep import beep_file
from flexvoice.sip.leg import SipLeg
from flexvoice.sip.links import PoolLinker
from flexvoice.sip.pool import PoolSettings, WorkerPool
from flexvoice.sip.usage import call_usage
from tests.conftest import REPO
from tests.fakeleg import Observer, Sink


def room_flow(room: str = "team") -> str:
    return (
        f"flow: room\nstart: room\nsteps:\n  room:\n    conference: {{room: {room}, beep: false}}\n"
    )


class Rooms:
    """Callers of `flows`' numbers run their flow for `account`; legs and the flows' end
    reasons are kept by call id."""

    def __init__(
        self, tmp: Path, flows: Mapping[str, str], *, account: str = "acme", beep: bool = False
    ):
        folder = tmp / "flows"
        folder.mkdir(exist_ok=True)
        for number, text in flows.items():
            (folder / f"{number.lstrip('+')}.yaml").write_text(text)
        self.account = account
        self.sink, self.observer = Sink(), Observer()
        self.service = ConferenceService(usage_sink=self.sink, beep=beep_file if beep else None)
        deps = FlowDeps(
            usage_sink=self.sink,
            observer=self.observer,
            conferences=self.service,
            recordings_dir=tmp / "recordings",
            tts_cache_dir=tmp / "tts",
        )
        self.runtime = FlowRuntime(folder, REPO / "ivr_prompts", deps)
        assert not [p for p in self.runtime.scan() if p.severity == "error"]
        self.names = {n.lstrip("+"): t.split("\n", 1)[0].split(": ")[1] for n, t in flows.items()}
        self.legs: dict[str, SipLeg] = {}
        self.reasons: dict[str, str] = {}

    async def on_incoming(self, leg: SipLeg) -> None:
        self.legs[leg.call_id] = leg
        leg.account = self.account
        leg.observer = self.observer  # the SIP layer's events (dtmf) in the same trace
        name = self.names[leg.callee.lstrip("+")]
        self.reasons[leg.call_id] = await self.runtime.start_call(leg, name, account=self.account)

    def pool(
        self,
        settings: PoolSettings,
        on_incoming: Callable[[SipLeg], Awaitable[None]] | None = None,
    ) -> WorkerPool:
        """A pool (not started) whose callers join rooms, linked as `flexvoice serve` links."""
        pool = WorkerPool(settings, on_incoming or self.on_incoming)
        self.service.linker = PoolLinker(pool)
        pool.leg_ended_hooks.append(self.record_usage)
        return pool

    def record_usage(self, leg: SipLeg) -> None:  # as the node does (flexvoice.node.pool)
        event = call_usage(leg)
        if event is not None:
            self.sink.record(event)

    def members(self, room: str = "team") -> dict[str, Any]:
        found = self.service.get(self.account, room)
        return dict(found.members) if found is not None else {}

    def conference_events(self) -> list[dict[str, Any]]:
        return [e for e in self.sink.events if e["kind"] == "conference"]

"""`CallContext`: one call running through a flow, and what the verbs share: the call's
variables and language, prompt lookup, answering, dialling, recordings, Smart Routing's reroute
usage, webhooks, SMS, queues and the step trace. The verbs (flows/verbs/) use it; the
interpreter (flows/interpreter.py) drives it step by step."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from flexvoice.callcontrol import CallEnded, CallLeg, CallObserver, DialResult
from flexvoice.clock import WEEKDAYS, utc_now
from flexvoice.e164 import E164_RE
from flexvoice.flows.base import Prompts, StepFailed, Text, prompt_names
from flexvoice.flows.deps import FlowDeps, iso
from flexvoice.flows.model import Flow
from flexvoice.flows.prompts import PromptResolver
from flexvoice.flows.queues import QueueBoards, QueueSlot
from flexvoice.logs import get_logger
from flexvoice.recordings.store import RecordingRow

log = get_logger("flexvoice.flows")

T = TypeVar("T")
_VAR_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class CallContext:
    flow: Flow
    leg: CallLeg
    deps: FlowDeps
    prompts: PromptResolver
    queues: QueueBoards
    account: str | None = None
    observer: CallObserver | None = None
    bills_reroute: bool = False  # the account's tariff prices `reroute` usage
    vars: dict[str, str] = field(default_factory=dict)
    language: str = "en"
    step: str = ""
    started_at: datetime = field(default_factory=utc_now)
    answered_at: datetime | None = None
    ended: bool = False
    rerouted: bool = False
    out_legs: int = 0
    call_recording: bool = False  # this flow started a whole-call recording (mode: call)

    @property
    def call_id(self) -> str:
        return self.leg.call_id

    # -- time and variables -------------------------------------------------------------
    def now(self) -> datetime:
        return self.deps.clock()

    async def sleep(self, seconds: float) -> None:
        await self.deps.sleep(seconds)

    def variable(self, name: str) -> str:
        local = self.now().astimezone(ZoneInfo(self.flow.timezone))
        builtin = {
            "caller": self.leg.caller,
            "callee": self.leg.callee,
            "call_id": self.call_id,
            "direction": self.leg.direction,
            "language": self.language,
            "flow": self.flow.name,
            "account": self.account or "",
            "weekday": WEEKDAYS[local.weekday()],
            "time": local.strftime("%H:%M"),
            "date": local.date().isoformat(),
        }
        if name in self.vars:
            return self.vars[name]
        return builtin.get(name, "")

    def interpolate(self, text: str) -> str:
        return _VAR_RE.sub(lambda m: self.variable(m.group(1)), text)

    # -- prompts --------------------------------------------------------------------------
    def text_for(self, say: Text) -> str:
        if isinstance(say, str):
            return say
        return say.get(self.language) or next(iter(say.values()))

    async def prompt_paths(self, prompt: Prompts | None, say: Text | None) -> list[Path]:
        paths = [self.prompts.prompt(name, self.language) for name in prompt_names(prompt)]
        if say is not None:
            paths.append(
                await self.prompts.say(self.interpolate(self.text_for(say)), self.language)
            )
        return paths

    async def play(
        self, prompt: Prompts | None, say: Text | None, *, optional: bool = False
    ) -> None:
        paths = await self.prompt_paths(prompt, say)
        if paths:
            await self.leg.play(paths)
        elif not optional:
            raise StepFailed("nothing to play")

    async def with_music(self, music: list[Path], work: Coroutine[Any, Any, T]) -> T:
        """Loop hold music while `work` runs (a dial or a pause)."""
        player = asyncio.create_task(self.leg.play(music, loop=True))
        await asyncio.sleep(0)  # the music starts before the work does
        try:
            return await work
        finally:
            with contextlib.suppress(CallEnded):
                await self.leg.stop_play()
            player.cancel()
            with contextlib.suppress(asyncio.CancelledError, CallEnded):
                await player

    # -- call control ---------------------------------------------------------------------
    async def ensure_answered(self) -> None:
        if not self.leg.answered:
            await self.leg.answer()
        self.note_answered()

    def note_answered(self) -> None:
        if self.answered_at is None and self.leg.answered:
            self.answered_at = self.now()

    async def redirect(self, target: str) -> str:
        if self.leg.answered:
            await self.leg.transfer(target)
            how = "transferred (REFER)"
        else:
            await self.leg.redirect(target)
            how = "redirected (302)"
        self.ended = True
        return how

    async def dial(
        self,
        targets: list[str],
        ring_timeout: float,
        caller_id: str | None,
        via: QueueSlot | None = None,
    ) -> DialResult:
        # The dialled legs' `call` usage events are written by the SIP layer, which sees
        # every leg however it ends (flexvoice.sip.usage); the flow only names the caller ID.
        shown = caller_id or (self.leg.caller if E164_RE.match(self.leg.caller) else None)
        # The statistics read agents ringing, answers and outcomes from these two events.
        self.trace("dial_start", {"step": self.step, "targets": list(targets)})
        # A queue's agent may be dialled by another node of a cluster (`via`, its line).
        result = (
            await via.dial(self.leg, targets[0], ring_timeout, shown) if via is not None else None
        ) or await self.leg.dial(targets, ring_timeout=ring_timeout, caller_id=shown)
        self.out_legs += len(result.attempts)
        self.trace(
            "dial_end",
            {
                "step": self.step,
                "targets": list(targets),
                "outcome": result.outcome,
                "answered_target": result.answered_target,
            },
        )
        return result

    async def bridge(self, result: DialResult, *, record: bool = False, channels: int = 1) -> str:
        """Wait for a bridged call to end, recording it (both parties: mixed, or one per
        channel) when asked."""
        started = False
        try:
            if record and self.call_id not in self.deps.recording_service().live:
                await self.start_call_recording(channels=channels)
                started = True
            return await self.leg.wait_bridge_end()
        finally:
            self.trace("bridge_end", {"step": self.step, "target": result.answered_target})
            if started:
                self.call_recording = False
                await self.deps.recording_service().stop(self.call_id)

    # -- recordings -----------------------------------------------------------------------
    def open_recording(self, callback: str | None = None) -> tuple[RecordingRow, Path]:
        """A voicemail's row (in-progress) and the file the worker writes it to."""
        service = self.deps.recording_service()
        return service.open(self.account or "", self.call_id, "message", callback=callback)

    async def close_recording(self, row: RecordingRow) -> RecordingRow:
        """The message is on disk: its row, usage event and webhook."""
        return await self.deps.recording_service().close_off_loop(row.id)

    async def start_call_recording(
        self, callback: str | None = None, channels: int = 1
    ) -> RecordingRow:
        service = self.deps.recording_service()
        row = await service.start(
            self.leg, self.account or "", callback=callback, channels=channels
        )
        self.call_recording = True
        return row

    # -- usage events ---------------------------------------------------------------------
    def record_usage(self, event: dict[str, Any]) -> None:
        """One usage event for the call's account (the usage sink prices it)."""
        if self.deps.usage_sink is None or not self.account:
            return  # nobody to bill: the number belongs to no account
        try:
            self.deps.usage_sink.record({"account": self.account, **event})
        except Exception:  # metering trouble must not drop the call
            log.exception("flow.usage_failed", event_id=event.get("id"))

    def reroute(self, why: str) -> None:
        """Smart Routing took a failover branch: one `reroute` event per call, when the
        account's tariff prices reroutes."""
        self.trace("reroute", {"step": self.step, "why": why})
        if self.rerouted or not self.bills_reroute:
            return
        self.rerouted = True
        self.record_usage(
            {
                "id": f"{self.call_id}:reroute",
                "kind": "reroute",
                "number": self.leg.callee,
                "at": iso(self.now()),
                "reason": why,
            }
        )

    # -- webhooks, queues, trace ----------------------------------------------------------
    def context_for_webhook(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "flow": self.flow.name,
            "step": self.step,
            "account": self.account,
            "from": self.leg.caller,
            "to": self.leg.callee,
            "direction": self.leg.direction,
            "language": self.language,
            "variables": dict(self.vars),
        }

    async def post_webhook(
        self, url: str, payload: dict[str, Any], timeout: float, headers: dict[str, str]
    ) -> Any:
        if self.deps.webhooks is None:
            raise StepFailed("no webhook client configured")
        return await self.deps.webhooks.post_json(url, payload, timeout, headers)

    async def send_sms(self, from_addr: str, to: str, body: str) -> tuple[str, int]:
        if self.deps.sms is None:
            raise StepFailed("no SMS gateway on this node")
        return await self.deps.sms.send_sms(self.account or "", from_addr, to, body)

    def queue_slot(self, name: str) -> contextlib.AbstractAsyncContextManager[QueueSlot]:
        return self.queues.slot(self.account or "", name, self.call_id, self.now().timestamp())

    def trace(self, kind: str, data: dict[str, object]) -> None:
        observer = self.observer or self.deps.observer
        if observer is None:
            return
        try:
            observer.call_event(self.call_id, kind, data)
        except Exception:
            log.exception("flow.observer_failed", kind=kind)

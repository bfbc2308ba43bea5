"""The interpreter: runs one call through a flow, step by step, on a `CallLeg`.

It owns what verbs share: the call's variables and language, prompt lookup, answering,
dialling with usage events, recordings, Smart Routing's reroute events, webhooks, the step
trace, and the guarantee that a call always ends: a failing step takes its `on_error`
branch or the caller hears an apology and the call is hung up.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from flexvoice.callcontrol import CallEnded, CallLeg, CallObserver, DialResult
from flexvoice.conference.service import ConferenceService
from flexvoice.e164 import E164_RE
from flexvoice.flows.base import Next, Prompts, StepFailed, Text, prompt_names
from flexvoice.flows.model import Flow
from flexvoice.flows.prompts import PromptResolver
from flexvoice.logs import get_logger
from flexvoice.recordings.service import RecordingService
from flexvoice.recordings.store import RecordingRow, RecordingStore
from flexvoice.storage.sqlite import connect

log = get_logger("flexvoice.flows")

T = TypeVar("T")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_VAR_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

APOLOGY_TEXT = {
    "nl": "Sorry, er ging iets mis. Probeer later opnieuw.",
    "fr": "Désolé, une erreur s'est produite. Veuillez rappeler plus tard.",
    "en": "Sorry, something went wrong. Please call again later.",
}


class UsageSink(Protocol):
    """Where usage events go (flexvoice.metering.sink.UsageSink implements it)."""

    def record(self, event: dict[str, Any]) -> None: ...


class SmsSender(Protocol):
    """The messaging service as a flow sees it (flexvoice.node.flows adapts it)."""

    def send_sms(self, account: str, from_addr: str, to: str, body: str) -> tuple[str, int]:
        """Queue one SMS; (message id, segments). Raise StepFailed saying why not."""
        ...


class WebhookClient(Protocol):
    async def post_json(
        self, url: str, payload: dict[str, Any], timeout: float, headers: dict[str, str]
    ) -> Any:
        """POST JSON, return the decoded JSON answer; raise StepFailed on any failure."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


async def maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


@dataclass
class FlowDeps:
    """What the runtime needs from the rest of the node; every part is optional in tests.

    Lookups may be plain functions or coroutines: `account_for(number) -> account | None`,
    `prices_for(account, kind) -> whether the account's tariff prices usage of that kind`,
    `continuity_for(e164) -> (forward_to, active) | None`,
    `draft_for(flow name, caller) -> a validated Flow to run instead | None` (the designer's
    test callers hear the draft)."""

    usage_sink: UsageSink | None = None
    account_for: Callable[[str], Any] | None = None
    prices_for: Callable[[str, str], Any] | None = None
    continuity_for: Callable[[str], Any] | None = None
    draft_for: Callable[[str, str], Any] | None = None
    webhooks: WebhookClient | None = None
    sms: SmsSender | None = None
    observer: CallObserver | None = None
    clock: Callable[[], datetime] = utc_now
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    recordings_dir: Path = Path("var/recordings")
    tts_cache_dir: Path = Path("var/tts")
    max_steps: int = 1000  # a flow that loops this often without ending is stopped
    # Recording rows, usage and webhooks (the node's, from flexvoice.recordings.node); when
    # none is given, `recording_service()` makes one that keeps its rows in memory.
    recordings: RecordingService | None = None
    conferences: ConferenceService | None = None  # rooms of the `conference` verb

    def recording_service(self) -> RecordingService:
        if self.recordings is None:
            self.recordings = RecordingService(
                RecordingStore(connect(":memory:")),
                self.recordings_dir,
                usage_sink=self.usage_sink,
                clock=self.clock,
            )
        return self.recordings


class QueueBoard:
    """Callers waiting in named queues (first come, first served) and whose turn it is
    among each queue's agents (round robin)."""

    def __init__(self) -> None:
        self.lines: dict[str, list[object]] = {}
        self.turn: dict[str, int] = {}

    @contextlib.contextmanager
    def slot(self, name: str) -> Iterator[QueueSlot]:
        slot = QueueSlot(self, name)
        self.lines.setdefault(name, []).append(slot)
        try:
            yield slot
        finally:
            slot.leave()


class QueueSlot:
    def __init__(self, board: QueueBoard, name: str):
        self.board, self.name = board, name

    def position(self) -> int:
        return self.board.lines[self.name].index(self) + 1

    def leave(self) -> None:
        line = self.board.lines.get(self.name, [])
        if self in line:
            line.remove(self)

    def next_target(self, targets: list[str]) -> str:
        n = self.board.turn.get(self.name, 0)
        self.board.turn[self.name] = n + 1
        return targets[n % len(targets)]


@dataclass
class CallContext:
    flow: Flow
    leg: CallLeg
    deps: FlowDeps
    prompts: PromptResolver
    queues: QueueBoard
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
        self, targets: list[str], ring_timeout: float, caller_id: str | None
    ) -> DialResult:
        # The dialled legs' `call` usage events are written by the SIP layer, which sees
        # every leg however it ends (flexvoice.sip.usage); the flow only names the caller ID.
        shown = caller_id or (self.leg.caller if E164_RE.match(self.leg.caller) else None)
        # The statistics read agents ringing, answers and outcomes from these two events.
        self.trace("dial_start", {"step": self.step, "targets": list(targets)})
        result = await self.leg.dial(targets, ring_timeout=ring_timeout, caller_id=shown)
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

    async def bridge(self, result: DialResult, *, record: bool = False) -> str:
        """Wait for a bridged call to end, recording it (both parties) when asked."""
        started = False
        try:
            if record and self.call_id not in self.deps.recording_service().live:
                await self.start_call_recording()
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

    def close_recording(self, row: RecordingRow) -> RecordingRow:
        """The message is on disk: its row, usage event and webhook."""
        return self.deps.recording_service().close(row.id)

    async def start_call_recording(self, callback: str | None = None) -> RecordingRow:
        service = self.deps.recording_service()
        row = await service.start(self.leg, self.account or "", callback=callback)
        self.call_recording = True
        return row

    # -- usage events ---------------------------------------------------------------------
    def emit(self, event: dict[str, Any]) -> None:
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
        self.emit(
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
        return self.deps.sms.send_sms(self.account or "", from_addr, to, body)

    def queue_slot(self, name: str) -> contextlib.AbstractContextManager[QueueSlot]:
        return self.queues.slot(name)

    def trace(self, kind: str, data: dict[str, object]) -> None:
        observer = self.observer or self.deps.observer
        if observer is None:
            return
        try:
            observer.call_event(self.call_id, kind, data)
        except Exception:
            log.exception("flow.observer_failed", kind=kind)


# The message a flow's task is cancelled with when its call moves to another flow
# (POST /v1/calls/{id} {"flow": ...}); any other cancellation is the node stopping.
FLOW_MOVED = "moved to another flow"


async def run_call(ctx: CallContext) -> str:
    """Run the flow to its end; return why the call ended. Never leaves the call up."""
    flow, leg = ctx.flow, ctx.leg
    step: str | None = flow.start
    why, prev = "start", None
    taken = 0
    end_status: int | None = None
    reason = ""
    try:
        while step is not None:
            taken += 1
            verb = flow.steps[step]
            ctx.step = step
            log.info("flow.step", flow=flow.name, step=step, verb=verb.verb, why=why)
            ctx.trace("step", {"step": step, "verb": verb.verb, "why": why, "from": prev})
            try:
                if taken > ctx.deps.max_steps:
                    raise StepFailed(f"more than {ctx.deps.max_steps} steps: the flow loops")
                nxt: Next = await verb.run(ctx)
            except (CallEnded, asyncio.CancelledError):
                raise
            except Exception as exc:
                if not isinstance(exc, StepFailed):
                    log.exception("flow.step_crashed", step=step, verb=verb.verb)
                message = str(exc) or type(exc).__name__
                log.warning("flow.step_failed", step=step, verb=verb.verb, error=message)
                ctx.trace("step_failed", {"step": step, "verb": verb.verb, "error": message})
                if verb.on_error is not None and taken <= ctx.deps.max_steps:
                    nxt = Next(verb.on_error, f"{step} failed: {message} -> on_error")
                else:
                    await apologize(ctx)
                    nxt = Next(None, f"{step} failed: {message}; apology played")
            ctx.note_answered()
            prev, step, why, end_status = step, nxt.step, nxt.why, nxt.sip_status
        reason = why
        if not ctx.ended:
            # Said before the BYE: the statistics tell a flow's hangup from the caller's.
            ctx.trace("hangup", {"step": ctx.step, "by": "flow", "sip_status": end_status})
            await leg.hangup(sip_status=end_status or 480, reason="flow_end")
            ctx.ended = True
    except CallEnded as exc:
        reason = f"{ended_by_words(exc.cause)} during {ctx.step}"
        ctx.ended = True
    except asyncio.CancelledError as exc:
        if exc.args and exc.args[0] == FLOW_MOVED:
            # The leg goes on with another flow: nothing to hang up.
            reason = f"{FLOW_MOVED} during {ctx.step}"
            raise
        reason = "cancelled (node shutting down)"
        if not ctx.ended:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    leg.hangup(sip_status=503, reason="shutdown", ended_by="node_shutdown"), 2
                )
        raise
    finally:
        await _finish(ctx, reason)
    return reason


def ended_by_words(who: str) -> str:
    """The trace's words for who ended a call (flexvoice.outcomes.EndedBy)."""
    return {
        "caller": "the caller hung up",
        "callee": "the callee hung up",
        "api": "hung up over the API",
        "flow": "ended by the flow",
        "worker_lost": "the media worker holding the call was lost",
        "node_shutdown": "the node shut down",
    }.get(who, f"call ended ({who})")


async def apologize(ctx: CallContext) -> None:
    """Tell the caller something went wrong; any trouble here just ends the call."""
    try:
        await ctx.ensure_answered()
        try:
            paths = [ctx.prompts.prompt("apology", ctx.language)]
        except StepFailed:
            text = APOLOGY_TEXT.get(ctx.language, APOLOGY_TEXT["en"])
            paths = [await ctx.prompts.say(text, ctx.language)]
        await ctx.leg.play(paths)
    except CallEnded:
        raise
    except Exception as exc:
        log.warning("flow.apology_failed", error=str(exc))


async def _finish(ctx: CallContext, reason: str) -> None:
    ctx.note_answered()
    if ctx.call_recording:
        try:
            await ctx.deps.recording_service().stop(ctx.call_id)
        except Exception:  # the recording's own row says what went wrong
            log.exception("flow.recording_stop_failed")
    log.info("flow.ended", flow=ctx.flow.name, reason=reason)
    ctx.trace("flow_end", {"flow": ctx.flow.name, "reason": reason})

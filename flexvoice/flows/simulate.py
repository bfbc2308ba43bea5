"""`flexvoice flows simulate`: a dry run of a flow with no SIP at all.

`ScriptedLeg` is a `CallLeg` that answers from a script (the digits the caller presses, how
each dial attempt ends) and a `VirtualClock` that jumps instead of sleeping, so a two-minute
queue or a 20 s ring timeout takes no time. Tests use the same leg.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from flexvoice.callcontrol import (
    CallEnded,
    CallObserver,
    DialAttempt,
    DialOutcome,
    DialResult,
    DigitsResult,
    PlayResult,
    RecordResult,
)
from flexvoice.conference.service import ConferenceService
from flexvoice.errors import UserError
from flexvoice.flows.deps import FlowDeps
from flexvoice.flows.model import Flow
from flexvoice.flows.runtime import FlowRuntime
from flexvoice.flows.scriptedtree import ScriptedTree
from flexvoice.flows.webhooks import FileWebhooks
from flexvoice.legstate import Answered, Disconnected, HangupAsked
from flexvoice.messaging.text import split
from flexvoice.outcomes import EndedBy, outcome_for, reason_for
from flexvoice.recordings.wav import write_silence


class VirtualClock:
    def __init__(self, start: datetime | None = None):
        self.start = start or datetime.now(UTC)
        self.t = self.start

    def now(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)

    def elapsed(self) -> float:
        return (self.t - self.start).total_seconds()


OUTCOME_TOKENS: dict[str, int] = {
    "answered": 200,
    "completed": 200,
    "busy": 486,
    "declined": 603,
    "no-answer": 487,  # rang until our CANCEL at the ring timeout
    "failed": 503,
    "canceled": 487,
}


def dial_token(token: str) -> tuple[DialOutcome, int, str]:
    """'busy', 'no-answer', 'answered', ... or a SIP status such as 486 or 503; the outcome
    and reason come from the one table the SIP layer uses (flexvoice.outcomes)."""
    token = token.strip().lower()
    if token in OUTCOME_TOKENS:
        status = OUTCOME_TOKENS[token]
        if token == "no-answer":
            return "no-answer", status, "ring_timeout"
        return outcome_for(status), status, reason_for(status)
    if token.isdigit() and 200 <= int(token) <= 699:
        status = int(token)
        return outcome_for(status), status, reason_for(status)
    raise UserError(
        f"--dial: '{token}' is not an outcome; use answered, busy, declined, no-answer, "
        "failed, canceled or a SIP status such as 486"
    )


@dataclass
class Script:
    digits: list[str] = field(default_factory=list)  # one entry per input; "" = no input
    dial: list[str] = field(default_factory=list)  # one token per target rung
    talk_seconds: float = 30.0  # how long an answered dial lasts
    message_seconds: float = 8.0  # how long a voicemail message lasts
    hangup_after_inputs: int | None = None  # the caller hangs up at this input (0-based)


def wav_seconds(path: Path) -> float:
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / float(w.getframerate() or 8000)
    except (OSError, wave.Error, EOFError):
        return 0.0


class ScriptedLeg:
    """A CallLeg that follows a `Script`; `actions` keeps what happened, in words."""

    def __init__(
        self,
        script: Script | None = None,
        clock: VirtualClock | None = None,
        *,
        call_id: str = "sim-1",
        caller: str = "+32470000000",
        callee: str = "+3226000000",
        direction: Literal["inbound", "outbound"] = "inbound",
        on_action: Callable[[str], None] | None = None,
        write_audio: bool = True,
    ):
        self.script = script or Script()
        self.write_audio = write_audio  # `flows simulate` writes no files
        self.recording_since = 0.0
        self.clock = clock or VirtualClock()
        self.call_id = call_id
        self.caller = caller
        self.callee = callee
        self.direction: Literal["inbound", "outbound"] = direction
        self.actions: list[str] = []
        self.on_action = on_action
        self._answered = False
        self.ended: str | None = None  # how the leg ended: "hangup 200", "redirect +32..."
        self.inputs = 0
        self._music = asyncio.Event()
        self.recording: Path | None = None
        self.recording_second: Path | None = None  # a dual-channel recording's other party
        # The leg's life and its dialled children, by the real leg's state machine.
        self.tree = ScriptedTree(self.call_id, direction, self.clock.now)

    @property
    def observer(self) -> CallObserver | None:
        return self.tree.observer

    @observer.setter
    def observer(self, value: CallObserver | None) -> None:
        self.tree.observer = value

    def act(self, text: str) -> None:
        self.actions.append(text)
        if self.on_action:
            self.on_action(text)

    def _alive(self) -> None:
        if self.ended is not None:
            raise CallEnded("already_ended")

    @property
    def answered(self) -> bool:
        return self._answered

    async def ring(self, early_media: bool = False) -> None:
        self.act("ring (183)" if early_media else "ring (180)")

    async def answer(self) -> None:
        self._alive()
        if not self._answered:
            self._answered = True
            self.tree.handle(Answered(200))
            self.act("answer")

    def _names(self, prompts: Sequence[Path]) -> str:
        return ", ".join(f"{p.parent.name}/{p.name}" for p in prompts)

    async def play(
        self, prompts: Sequence[Path], *, loop: bool = False, stop_on_dtmf: bool = False
    ) -> PlayResult:
        self._alive()
        if loop:
            self.act(f"music {self._names(prompts)} (looped)")
            self._music.clear()
            await self._music.wait()
            return PlayResult()
        self.act(f"play {self._names(prompts)}")
        self.clock.advance(sum(wav_seconds(p) for p in prompts))
        await asyncio.sleep(0)
        return PlayResult()

    async def stop_play(self) -> None:
        self._music.set()

    async def collect_digits(
        self,
        *,
        max_digits: int,
        timeout: float,
        inter_digit_timeout: float | None = None,
        terminators: str = "#",
        prompts: Sequence[Path] = (),
    ) -> DigitsResult:
        self._alive()
        if prompts:
            await self.play(prompts)
        n = self.inputs
        self.inputs += 1
        if self.script.hangup_after_inputs is not None and n >= self.script.hangup_after_inputs:
            self.ended = "caller hung up"
            self.act("caller hangs up")
            self.tree.handle(Disconnected(200 if self._answered else 487))
            raise CallEnded("caller")
        digits = self.script.digits[n] if n < len(self.script.digits) else ""
        if not digits:
            self.clock.advance(timeout)
            self.act(f"no input ({timeout:g}s)")
            return DigitsResult("", "timeout")
        self.clock.advance(0.5 * len(digits))
        self.act(f"caller presses {digits}")
        if terminators and digits[-1] in terminators:
            return DigitsResult(digits, "terminator")
        kind: Literal["max_digits", "timeout"] = (
            "max_digits" if len(digits) >= max_digits else "timeout"
        )
        return DigitsResult(digits[:max_digits], kind)

    async def record(
        self, path: Path, *, max_length: float, beep: bool = True, stop_on_dtmf: bool = True
    ) -> RecordResult:
        self._alive()
        seconds = min(self.script.message_seconds, max_length)
        self.act(f"{'beep, ' if beep else ''}record {seconds:g}s into {path.name}")
        self.clock.advance(seconds)
        if self.write_audio:  # as PJSIP would: the file the recording's row reads back
            write_silence(path, seconds)
        stopped: Literal["max_length", "dtmf"] = "max_length" if seconds >= max_length else "dtmf"
        return RecordResult(path, seconds, stopped)

    async def start_recording(self, path: Path, second: Path | None = None) -> None:
        self.recording = path
        self.recording_second = second
        self.recording_since = self.clock.elapsed()
        self.act(f"start recording the call into {path.name}")

    async def pause_recording(self) -> None:
        self.act("pause the recording")

    async def resume_recording(self) -> None:
        self.act("resume the recording")

    @property
    def media_worker(self) -> str:
        return "simulated"

    async def conf_join(self, room: str, muted: bool) -> None:
        self._alive()
        self.act(f"join conference room {room}{' muted' if muted else ''}")

    async def wait_ended(self) -> None:
        """The caller talks `talk_seconds`, then hangs up."""
        self._alive()
        self.clock.advance(self.script.talk_seconds)
        self.ended = "caller hung up"
        self.act(f"caller hangs up after {self.script.talk_seconds:g}s")

    @property
    def ended_by(self) -> EndedBy | None:
        if self.ended is None:
            return None
        return "caller" if self.ended == "caller hung up" else "flow"

    async def conf_mute(self, muted: bool) -> None:
        self.act("muted" if muted else "unmuted")

    async def conf_leave(self) -> None:
        self.act("leave the conference room")

    def talk_time(self) -> tuple[float, bool]:
        return 0.0, False  # a simulated caller's speech is not measured

    async def stop_recording(self) -> RecordResult | None:
        if self.recording is None:
            return None
        path, self.recording = self.recording, None
        seconds = self.clock.elapsed() - self.recording_since
        if self.write_audio:
            for part in (path, self.recording_second):
                if part is not None:
                    write_silence(part, seconds)
        self.act("stop recording")
        return RecordResult(path, seconds, "stop")

    async def dial(
        self,
        targets: Sequence[str],
        *,
        ring_timeout: float,
        caller_id: str | None = None,
        bridge: bool = True,
    ) -> DialResult:
        self._alive()
        attempts: list[DialAttempt] = []
        winner: str | None = None
        waited = 0.0
        for target in targets:
            token = self.script.dial.pop(0) if self.script.dial else "answered"
            outcome, status, reason = dial_token(token)
            if outcome == "completed" and winner is None:
                winner = target
                attempts.append(DialAttempt(target, "completed", status, reason))
                waited = max(waited, min(4.0, ring_timeout))
            else:
                if outcome == "completed":  # a second one answering at once loses the race
                    outcome, status, reason = "canceled", 487, "answered elsewhere"
                attempts.append(DialAttempt(target, outcome, status, reason))
                waited = max(waited, ring_timeout if outcome == "no-answer" else 1.0)
        if winner is not None and len(targets) > 1:
            attempts = [
                a
                if a.target == winner or a.outcome != "no-answer"
                else DialAttempt(a.target, "canceled", 487, "answered elsewhere")
                for a in attempts
            ]
            waited = min(waited, 4.0)
        self.clock.advance(waited)
        for a in attempts:
            self.tree.ring(a, won=a.target == winner)
        said = "; ".join(f"{a.target} {a.outcome} {a.sip_status}" for a in attempts)
        self.act(f"dial {', '.join(targets)} ({ring_timeout:g}s): {said}")
        if winner is None:
            return DialResult(attempts=attempts)
        if bridge and not self._answered:
            self._answered = True
            self.tree.handle(Answered(200))
        return DialResult(attempts=attempts, answered=self, answered_target=winner)

    async def wait_bridge_end(self) -> str:
        self.clock.advance(self.script.talk_seconds)
        self.act(f"talk {self.script.talk_seconds:g}s, callee hangs up")
        self.tree.callee_hangs_up()
        await asyncio.sleep(0)
        return "callee"

    async def redirect(self, target: str) -> None:
        self._alive()
        self.ended = f"302 to {target}"
        self.act(f"redirect 302 to {target}")
        self.tree.machine.expect("redirected")
        self.tree.handle(Disconnected(302))

    async def transfer(self, target: str) -> None:
        self._alive()
        self.ended = f"REFER to {target}"
        self.act(f"transfer (REFER) to {target}")
        self.tree.machine.expect("transferred")
        self.tree.handle(Disconnected(200))

    async def hangup(
        self, sip_status: int = 200, reason: str = "normal", *, ended_by: EndedBy = "flow"
    ) -> None:
        if self.ended is not None:
            return
        self.ended = "BYE" if self._answered else f"{sip_status}"
        self.act("hang up (BYE)" if self._answered else f"refuse with {sip_status}")
        self.tree.handle(HangupAsked(ended_by, sip_status, reason))
        self.tree.handle(Disconnected(sip_status))


class SimulatedSms:
    """`sms` steps print what would be sent and its segments; nothing leaves the machine."""

    def __init__(self, printer: _Printer):
        self.printer = printer

    def send_sms(self, account: str, from_addr: str, to: str, body: str) -> tuple[str, int]:
        encoding, parts = split(body, 0)
        self.printer.action(f"sms {from_addr} -> {to} ({len(parts)} {encoding} segment(s)): {body}")
        return "SMsimulated", len(parts)


class _Printer:
    """Prints each step (with why) and what the caller hears, at virtual time."""

    def __init__(
        self,
        clock: VirtualClock,
        write: Callable[[str], None],
        trace: list[dict[str, object]] | None = None,
    ):
        self.clock = clock
        self.write = write
        self.failed = False
        # The same events as data (the designer lights up the path from them).
        self.trace = trace if trace is not None else []

    def stamp(self) -> str:
        s = int(self.clock.elapsed())
        return f"{s // 60:2d}:{s % 60:02d}"

    def call_event(self, call_id: str, kind: str, data: dict[str, object]) -> None:
        if kind == "step":
            step, verb, why = data["step"], data["verb"], data["why"]
            self.write(f"{self.stamp()}  {step!s:<16} {verb!s:<8} <- {why}")
            self.trace.append(
                {"kind": "step", "at": self.stamp(), "step": step, "verb": verb, "why": why}
            )
        elif kind == "step_failed":
            self.failed = True
            self.write(f"{self.stamp()}  !! {data['step']} failed: {data['error']}")
            self.trace.append(
                {"kind": "failed", "at": self.stamp(), "step": data["step"], "why": data["error"]}
            )

    def action(self, text: str) -> None:
        self.write(f"{'':7}{'':16} . {text}")
        self.trace.append({"kind": "action", "at": self.stamp(), "text": text})


async def simulate_flow(
    flow: Flow,
    prompts_dir: Path,
    *,
    at: datetime,
    caller: str,
    callee: str,
    script: Script,
    webhook_answer: object | None,
    continuity: str | None,
    variables: dict[str, str],
    write: Callable[[str], None],
    trace: list[dict[str, object]] | None = None,
) -> tuple[str, bool]:
    """Run `flow` once on a ScriptedLeg; returns (why the call ended, a step failed)."""

    clock = VirtualClock(at)
    printer = _Printer(clock, write, trace)
    deps = FlowDeps(
        webhooks=FileWebhooks(webhook_answer),
        sms=SimulatedSms(printer),
        observer=printer,
        clock=clock.now,
        sleep=clock.sleep,
        continuity_for=(lambda number: (continuity, True)) if continuity else None,
        recordings_dir=Path("var/recordings"),
        tts_cache_dir=Path("var/tts"),
        conferences=ConferenceService(),
    )
    runtime = FlowRuntime(Path("/nonexistent"), prompts_dir, deps)
    runtime.prompts.synthesize = False  # name the say: file, do not make it
    runtime.flows[flow.name] = flow
    leg = ScriptedLeg(
        script,
        clock,
        call_id="simulated",
        caller=caller,
        callee=callee,
        on_action=printer.action,
        write_audio=False,
    )
    reason = await runtime.start_call(leg, flow.name, variables=variables)
    write(f"{printer.stamp()}  call ended: {reason} ({leg.ended or 'still up'})")
    return reason, printer.failed

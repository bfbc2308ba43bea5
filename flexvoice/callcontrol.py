"""The seam between the flow runtime and the SIP layer.

The flow interpreter (flexvoice/flows) drives calls only through `CallLeg`; the SIP layer
(flexvoice/sip) implements it on top of the worker pool, and tests or `flows simulate`
implement it without any SIP. Nothing here imports pjsua2 or does I/O.

Every coroutine raises `CallEnded` when the far end hangs up (or the worker holding the call
is lost) while it waits, so a flow never hangs on a call that is gone.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from flexvoice.outcomes import DialOutcome as DialOutcome  # re-exported: the seam's words
from flexvoice.outcomes import EndedBy as EndedBy


def new_call_id() -> str:
    """A call's id, the one form for every call and leg (API, inbound, child, voice
    verification): CA + 32 hex."""
    return "CA" + uuid.uuid4().hex


class CallEnded(Exception):
    """The leg is gone: the far end hung up, the API or the node ended it, or the worker
    holding it was lost."""

    def __init__(self, cause: str = "caller", sip_status: int | None = None):
        super().__init__(cause)
        self.cause = cause  # who ended it (flexvoice.outcomes.EndedBy): "caller", "api", ...
        self.sip_status = sip_status


@dataclass(frozen=True)
class PlayResult:
    interrupted_by: str | None = None  # the DTMF digit that stopped the prompt, if any


@dataclass(frozen=True)
class DigitsResult:
    digits: str  # may be "" (no input)
    terminated_by: Literal["terminator", "max_digits", "timeout"]


@dataclass(frozen=True)
class RecordResult:
    path: Path
    duration: float  # seconds of audio written
    stopped_by: Literal["dtmf", "max_length", "hangup", "stop"]


@dataclass(frozen=True)
class DialAttempt:
    target: str  # E.164 number or SIP URI
    outcome: DialOutcome
    sip_status: int  # final SIP status (200, 486, 480, 408, 503, 487, ...)
    reason: str  # SIP reason phrase or our cause ("ring_timeout", "no_free_worker", ...)


@dataclass
class DialResult:
    """How a dial (one target, or several rung at once) ended."""

    attempts: list[DialAttempt]
    answered: CallLeg | None = None  # the leg that answered, already bridged if bridge=True
    answered_target: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def outcome(self) -> DialOutcome:
        if self.answered is not None:
            return "completed"
        outcomes = {a.outcome for a in self.attempts}
        for o in ("busy", "no-answer", "canceled", "failed"):
            if o in outcomes:
                return o  # type: ignore[return-value]
        return "failed"


class CallLeg(Protocol):
    """One call leg held by a media worker."""

    call_id: str
    direction: Literal["inbound", "outbound"]
    caller: str  # the From number (E.164 where it parses) or SIP URI
    callee: str  # the To / dialled number

    @property
    def answered(self) -> bool: ...

    async def ring(self, early_media: bool = False) -> None:
        """180 Ringing, or 183 with early media so prompts can play before answering."""

    async def answer(self) -> None:
        """200 OK (does nothing if already answered)."""

    async def play(
        self, prompts: Sequence[Path], *, loop: bool = False, stop_on_dtmf: bool = False
    ) -> PlayResult:
        """Play WAV files in order; returns when done, or at the first digit if stop_on_dtmf.
        With loop=True it plays until `stop_play()` or a digit (if stop_on_dtmf)."""

    async def stop_play(self) -> None: ...

    async def collect_digits(
        self,
        *,
        max_digits: int,
        timeout: float,
        inter_digit_timeout: float | None = None,
        terminators: str = "#",
        prompts: Sequence[Path] = (),
    ) -> DigitsResult:
        """Play `prompts` (barge-in: the first digit stops them), then collect digits.
        `timeout` runs from the end of the prompts to the first digit; digits already
        received while the prompt played count."""

    async def record(
        self, path: Path, *, max_length: float, beep: bool = True, stop_on_dtmf: bool = True
    ) -> RecordResult:
        """Record what the caller says into a WAV file until a digit, max_length or hangup."""

    async def start_recording(self, path: Path, second: Path | None = None) -> None:
        """Whole-call recording in the background: both directions mixed into `path`, or
        with `second` this leg's party into `path` and what it hears into `second` (dual
        channel, interleaved by the recording service)."""

    async def pause_recording(self) -> None:
        """Silence goes into the whole-call recording until resumed."""

    async def resume_recording(self) -> None: ...

    async def stop_recording(self) -> RecordResult | None: ...

    @property
    def media_worker(self) -> str:
        """Where the leg's audio is mixed (legs in one conference room must share it)."""
        ...

    async def conf_join(self, room: str, muted: bool) -> None:
        """Mix the leg into a conference room: it hears every other member, and is heard
        by them unless muted."""

    async def conf_mute(self, muted: bool) -> None: ...

    def talk_time(self) -> tuple[float, bool]:
        """Seconds the leg has spoken in its conference room (its media worker's measure, the
        spurt going on counted up to now), and whether it speaks now."""

    async def wait_ended(self) -> None:
        """Return once the leg has ended (however it ended)."""

    @property
    def ended_by(self) -> EndedBy | None:
        """Who ended the leg (None while it lasts)."""

    async def conf_leave(self) -> None: ...

    async def dial(
        self,
        targets: Sequence[str],
        *,
        ring_timeout: float,
        caller_id: str | None = None,
        bridge: bool = True,
    ) -> DialResult:
        """Ring all `targets` at once (one target = plain dial); the first to answer wins,
        the others are cancelled (487). With bridge=True the winner is bridged to this leg
        on the same worker. Returns when someone answered or all failed or timed out."""

    async def wait_bridge_end(self) -> str:
        """After a bridged dial: wait until either side hangs up; returns who ("caller" or
        "callee"). The caller hanging up raises CallEnded instead."""

    async def redirect(self, target: str) -> None:
        """302 Moved Temporarily to `target` (only before answer); the leg then ends."""

    async def transfer(self, target: str) -> None:
        """Blind transfer with REFER (after answer); the leg then ends."""

    async def hangup(
        self, sip_status: int = 200, reason: str = "normal", *, ended_by: EndedBy = "flow"
    ) -> None:
        """End the leg and every leg it dialled: BYE if answered, else a final response with
        `sip_status` (e.g. 480, 486, 603, 404, 403). `ended_by` is who decided it (the
        flow, the API, the node shutting down). Never raises CallEnded."""


# What a call's life looks like to the rest of the node (API call resources, traces, webhooks).
CallStatus = Literal[
    "queued",
    "ringing",
    "in-progress",
    "completed",
    "busy",
    "no-answer",
    "failed",
    "canceled",
    "redirected",
]


class CallObserver(Protocol):
    """Receives every event of a call: SIP progress from the SIP layer ("ringing", "answered",
    "ended" with sip_status/cause) and step transitions from the flow runtime ("step" with
    step/verb/why). The API stores them (GET /v1/calls/{id}/events) and fires webhooks.
    Must not block: implementations queue work and return."""

    def call_event(self, call_id: str, kind: str, data: dict[str, object]) -> None: ...


class Originator(Protocol):
    """Places outbound calls through the trunk (the SIP layer implements it on the pool)."""

    def caller_id_refusal(self, caller_id: str) -> str | None:
        """Why the trunk would not present `caller_id` (its `caller_id.allowed` rule, named),
        or None when it may: checked before any INVITE, never replaced silently."""

    async def hangup(self, call_id: str, ended_by: EndedBy) -> bool:
        """End a live call this node holds that it did not place over REST (an inbound
        call, a dialled leg), with every leg of its tree; False when it holds none."""

    async def originate(
        self,
        to: str,
        caller_id: str,
        *,
        ring_timeout: float,
        call_id: str | None = None,
        observer: CallObserver | None = None,
        account: str | None = None,
    ) -> tuple[CallLeg | None, DialAttempt]:
        """Ring `to`; returns (the answered leg, the attempt) or (None, the failed attempt).
        `observer` gets "ringing"/"answered"/"ended" events for `call_id`; `account` is
        billed for the leg (its `call` usage event)."""

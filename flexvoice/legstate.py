"""The life of one call leg as a state machine without I/O (as h11 keeps HTTP's).

`LegMachine.handle(event, now)` takes what happened (the far end rang, answered, hung up; we
asked to hang up; the worker holding the leg died) and the time, and returns what to do:
trace events to report (`ReportEvent`), a hang-up to send (`SendHangup`), the leg's children to
end (`EndTree`). The real SIP leg (flexvoice.sip.leg) and the scripted leg of the simulator
and the tests (flexvoice.flows.simulate) both run it, so both report one `ringing`, one
`answered` and one `ended` per leg, with the same status, reason and `ended_by`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from flexvoice.outcomes import (
    NORMAL_CLEARING,
    DialOutcome,
    EndedBy,
    far_end,
    outcome_for,
    reason_for,
)

LegState = Literal["new", "early", "answered", "ended"]
LegOutcome = DialOutcome | Literal["redirected"]


# -- events -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ringing:
    sip_status: int = 180


@dataclass(frozen=True)
class Answered:
    sip_status: int = 200


@dataclass(frozen=True)
class Disconnected:
    """The leg is gone (PJSIP's DISCONNECTED): `sip_status` is the INVITE's final status
    when it was never answered, else the status the BYE was given."""

    sip_status: int
    reason: str = ""


@dataclass(frozen=True)
class HangupAsked:
    """We end the leg (BYE, CANCEL or a final response). `outcome` and `cause` say what to
    report when it is not the SIP status's own outcome (a CANCEL at ring timeout is a
    no-answer)."""

    ended_by: EndedBy
    sip_status: int = 200
    reason: str = "normal"
    outcome: DialOutcome | None = None
    cause: str | None = None


@dataclass(frozen=True)
class Lost:
    """The worker holding the leg died: no BYE will ever come from it."""


Event = Ringing | Answered | Disconnected | HangupAsked | Lost


# -- commands -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportEvent:
    """Tell the call's observer (trace, call registry, statistics) this happened."""

    kind: str  # "ringing", "answered", "ended"
    data: dict[str, object]


@dataclass(frozen=True)
class SendHangup:
    sip_status: int
    reason: str


@dataclass(frozen=True)
class EndTree:
    """End every child of this leg (their calls end with it), each with this `ended_by`."""

    ended_by: EndedBy


Command = ReportEvent | SendHangup | EndTree


@dataclass
class LegMachine:
    direction: Literal["inbound", "outbound"]
    created_at: datetime
    state: LegState = "new"
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    final_status: int | None = None
    reason: str = ""
    outcome: LegOutcome | None = None
    cause: str = ""
    ended_by: EndedBy | None = None
    hangup_sent: bool = False
    _asked: HangupAsked | None = field(default=None, repr=False)

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    @property
    def ended(self) -> bool:
        return self.state == "ended"

    @property
    def talk_seconds(self) -> int:
        """Seconds from answer to end, each started one counted (0 if never answered)."""
        if self.answered_at is None or self.ended_at is None:
            return 0
        return max(0, -int(-(self.ended_at - self.answered_at).total_seconds() // 1))

    def expect(self, cause: str) -> None:
        """What this leg's end will be called when it comes (redirected, transferred)."""
        if not self.ended:
            self.cause = cause

    def handle(self, event: Event, now: datetime) -> list[Command]:
        if self.ended:
            return []
        if isinstance(event, Ringing):
            if self.state != "new":
                return []
            self.state = "early"
            return [ReportEvent("ringing", {"sip_status": event.sip_status})]
        if isinstance(event, Answered):
            if self.answered:
                return []
            self.state = "answered"
            self.answered_at = now
            return [ReportEvent("answered", {"sip_status": event.sip_status, "at": _iso(now)})]
        if isinstance(event, HangupAsked):
            if self.ended_by is None:
                self.ended_by = event.ended_by
            if self._asked is None:
                self._asked = event
            if self.hangup_sent:
                return []
            self.hangup_sent = True
            return [SendHangup(event.sip_status, event.reason)]
        if isinstance(event, Lost):
            self.ended_by = "worker_lost"
            return self._end(503, "worker lost", now)
        return self._end(event.sip_status, event.reason, now)

    def _end(self, status: int, reason: str, now: datetime) -> list[Command]:
        self.state = "ended"
        self.ended_at = now
        asked = self._asked
        if self.ended_by is None:
            self.ended_by = far_end(self.direction)
        if self.answered:
            # The INVITE was answered: 200, whatever status PJSIP echoes for the BYE.
            self.final_status, self.reason, self.outcome = 200, NORMAL_CLEARING, "completed"
        else:
            self.final_status = status
            self.reason = reason or reason_for(status)
            if 300 <= status < 400:
                self.outcome = "redirected"
            elif asked is not None and asked.outcome is not None:
                self.outcome = asked.outcome
            else:
                self.outcome = outcome_for(status)
        if asked is not None and asked.cause and not self.cause:
            self.cause = asked.cause
        if not self.cause:
            self.cause = "normal" if self.answered else str(self.outcome)
        if self.ended_by == "worker_lost":
            self.cause = "worker_lost"
        data: dict[str, object] = {
            "sip_status": self.final_status,
            "reason": self.reason,
            "outcome": self.outcome,
            "cause": self.cause,
            "ended_by": self.ended_by,
            "talk_seconds": self.talk_seconds,
            "at": _iso(now),
        }
        return [ReportEvent("ended", data), EndTree(self.ended_by)]


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")

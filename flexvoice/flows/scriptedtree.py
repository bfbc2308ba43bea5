"""The call tree of a scripted leg (flexvoice.flows.simulate): the leg and the children its
dial steps ring, each run by the real leg's state machine (flexvoice.legstate), so the
observer hears what a SIP call would say - one `ringing`, `answered` and `ended` per leg,
the same statuses, reasons and `ended_by` - without any SIP."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from flexvoice.callcontrol import CallObserver, DialAttempt, DialOutcome
from flexvoice.legstate import (
    Answered,
    Disconnected,
    EndTree,
    Event,
    HangupAsked,
    LegMachine,
    ReportEvent,
    Ringing,
)


@dataclass
class ScriptedTree:
    call_id: str
    direction: Literal["inbound", "outbound"]
    clock: Callable[[], datetime]
    observer: CallObserver | None = None
    machine: LegMachine = field(init=False)
    children: dict[str, LegMachine] = field(default_factory=dict)  # child id -> its life
    bridged: str | None = None  # the child id that answered

    def __post_init__(self) -> None:
        self.machine = LegMachine(self.direction, self.clock())

    def handle(self, event: Event) -> None:
        self._run(self.call_id, self.machine, event)

    def _run(self, call_id: str, machine: LegMachine, event: Event) -> None:
        for command in machine.handle(event, self.clock()):
            if isinstance(command, ReportEvent) and self.observer is not None:
                data = {k: v for k, v in command.data.items() if k != "at"}
                self.observer.call_event(call_id, command.kind, data)
            elif isinstance(command, EndTree):
                for child_id, child in self.children.items():
                    if not child.ended:
                        status = 200 if child.answered else 487
                        self._run(child_id, child, HangupAsked(command.ended_by, status))
                        self._run(child_id, child, Disconnected(status))

    def ring(self, attempt: DialAttempt, won: bool) -> None:
        """One dialled target, from its INVITE to how it ended (or its answer)."""
        child_id = f"{self.call_id}-leg{len(self.children) + 1}"
        child = LegMachine("outbound", self.clock())
        self.children[child_id] = child
        if self.observer is not None:
            self.observer.call_event(
                child_id, "leg", {"parent_call_id": self.call_id, "to": attempt.target}
            )
        if won or attempt.reason in ("ring_timeout", "answered elsewhere"):
            self._run(child_id, child, Ringing(180))  # a busy or failing phone never rang
        if won:
            self._run(child_id, child, Answered(200))
            self.bridged = child_id
        elif attempt.reason in ("ring_timeout", "answered elsewhere"):
            outcome: DialOutcome = "no-answer" if attempt.reason == "ring_timeout" else "canceled"
            cause = "ring_timeout" if outcome == "no-answer" else "answered_elsewhere"
            self._run(child_id, child, HangupAsked("flow", 487, outcome=outcome, cause=cause))
            self._run(child_id, child, Disconnected(487))
        else:
            self._run(child_id, child, Disconnected(attempt.sip_status, attempt.reason))

    def callee_hangs_up(self) -> None:
        if self.bridged is not None:
            self._run(self.bridged, self.children[self.bridged], Disconnected(200))
            self.bridged = None

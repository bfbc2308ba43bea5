"""What one finished call contributes to the statistics, read from its record in the call
registry and its trace (no I/O, no clock: the same input always gives the same facts, which
is what lets the rollups be checked against a full recomputation).

Every figure is defined here once, and in the README's "Call statistics" section in words:

- offered: every call the node handled (inbound to a number, or placed over the API), counted
  in the period its first leg reached the node (`created_at`), once it has ended. Legs that
  a call dials (agents, targets) are not calls of their own.
- outcome: exactly one per call -
  `answered`: a person answered (a dial or queue target for inbound calls, the callee for
  outbound calls);
  `abandoned`: the caller hung up before a person answered and before the flow ended the call
  (`end_step` says where);
  `busy`, `no_answer`, `failed`: the flow ended the call because its last dial was busy, not
  answered in time (a queue overflow without `on_overflow` too) or failed; a call the node
  could not carry (worker lost, unknown flow) is `failed` too;
  `redirected`: Voice Continuity sent the call elsewhere, the flow did not run;
  `ended_in_flow`: the flow ended the call itself without a person (a message, voicemail,
  closed hours, no valid menu choice, a redirect step).
- rerouted: Smart Routing took a failover branch at least once (busy, no-answer, failed,
  queue overflow); it is not an outcome: a rerouted call can still be answered.
- speed of answer: for answered calls, seconds from the call reaching the node to the person's
  answer (menus and queue included). talk: seconds from that answer to the end of the bridge.
- wait in queue: from entering a queue step to an agent answering, the caller hanging up
  (abandoned in the queue) or the queue's `max_wait` (overflow).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

Outcome = Literal[
    "answered", "abandoned", "busy", "no_answer", "failed", "redirected", "ended_in_flow"
]
OUTCOMES: tuple[Outcome, ...] = (
    "answered",
    "abandoned",
    "busy",
    "no_answer",
    "failed",
    "redirected",
    "ended_in_flow",
)
QueueResult = Literal["answered", "abandoned", "overflow", "failed"]

# A dial's outcome (the call registry's vocabulary) as a call outcome.
_DIAL_OUTCOME: dict[str, Outcome] = {
    "busy": "busy",
    "no-answer": "no_answer",
    "failed": "failed",
    "canceled": "no_answer",
}
_STATUS_OUTCOME: dict[str, Outcome] = {
    "completed": "answered",
    "busy": "busy",
    "no-answer": "no_answer",
    "failed": "failed",
    "canceled": "abandoned",
}


class CallLike(Protocol):
    """The fields of a call registry record the statistics read (flexvoice.calls)."""

    @property
    def id(self) -> str: ...
    @property
    def account(self) -> str: ...
    @property
    def direction(self) -> str: ...
    @property
    def from_number(self) -> str: ...
    @property
    def to_number(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def flow(self) -> str | None: ...
    @property
    def created_at(self) -> str: ...
    @property
    def answered_at(self) -> str | None: ...
    @property
    def ended_at(self) -> str | None: ...


@dataclass(frozen=True)
class QueueVisit:
    queue: str
    wait: float  # seconds
    result: QueueResult
    service_level: float  # seconds: answered within this wait is in service level
    talk: float  # seconds, when this visit was answered


@dataclass(frozen=True)
class StepVisit:
    step: str
    verb: str
    abandoned: bool  # the caller hung up in this step
    ended: bool  # the call ended in this step (any way)


@dataclass(frozen=True)
class CallFacts:
    call_id: str
    account: str
    started: datetime  # UTC: when the call reached the node; it places the call in a bucket
    direction: str
    number: str  # the business's number: the called one inbound, the caller ID outbound
    flow: str
    outcome: Outcome
    end_step: str
    rerouted: bool
    speed_of_answer: float | None
    talk: float
    webhook_failures: int
    queues: tuple[QueueVisit, ...]
    steps: tuple[StepVisit, ...]  # each step once, in the order first entered
    menu: tuple[tuple[str, str], ...]  # (step, option chosen or "none")


def parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _seconds(start: datetime | None, end: datetime | None) -> float:
    if start is None or end is None:
        return 0.0
    return max(0.0, round((end - start).total_seconds(), 3))


def is_own_call(call: Any) -> bool:
    """Only a call's first leg counts: a dialled child leg (the call tree's `parent`) does not."""
    return not (
        getattr(call, "parent_call_id", None)
        or getattr(call, "parent_id", None)
        or getattr(call, "parent", None)
    )


def call_facts(call: CallLike, events: Sequence[dict[str, Any]]) -> CallFacts:
    """The facts of one ended call; `events` is its trace as the registry keeps it
    (dicts with `at`, `kind`, `data`, in order)."""
    started = parse_time(call.created_at)
    ended = parse_time(call.ended_at) if call.ended_at else started
    inbound = call.direction == "inbound"
    number = call.to_number if inbound else call.from_number

    steps: dict[str, StepVisit] = {}
    current, current_verb = "", ""
    menu: list[tuple[str, str]] = []
    rerouted = continuity = flow_hung_up = redirected_by_step = False
    webhook_failures = 0
    last_dial: dict[str, Any] | None = None
    person_at: datetime | None = None
    bridge_end: datetime | None = None
    open_queues: dict[str, tuple[datetime, float]] = {}
    visits: list[tuple[str, float, QueueResult, float, bool]] = []
    ended_data: dict[str, Any] = {}
    for event in events:
        kind, data = event["kind"], event.get("data") or {}
        at = parse_time(event["at"])
        if kind == "ended":
            # What the flow says after the call's end (its wrap-up) is not part of the call:
            # the rollups are written at this event, and a recomputation reads the same.
            ended_data = data
            break
        if kind == "step":
            current, current_verb = str(data.get("step", "")), str(data.get("verb", ""))
            if current == "continuity" and data.get("from") is None and not steps:
                continuity = True
            steps.setdefault(current, StepVisit(current, current_verb, False, False))
            redirected_by_step = current_verb == "redirect"
        elif kind == "menu":
            menu.append((str(data.get("step", current)), str(data.get("option", "none"))))
        elif kind == "reroute" and data.get("why") != "continuity":
            rerouted = True
        elif kind == "webhook_failed":
            webhook_failures += 1
        elif kind == "hangup":
            flow_hung_up = True
        elif kind == "dial_end":
            last_dial = data
            if data.get("answered_target") and person_at is None:
                person_at = at
                bridge_end = None
        elif kind == "bridge_end" and bridge_end is None and person_at is not None:
            bridge_end = at
        elif kind == "queue_enter":
            sl = data.get("sl")
            open_queues[str(data.get("queue"))] = (
                at,
                float(sl) if isinstance(sl, int | float) else 20.0,
            )
        elif kind == "queue_leave":
            name = str(data.get("queue"))
            if name in open_queues:
                entered, sl = open_queues.pop(name)
                result: QueueResult = "answered" if data.get("result") == "answered" else "overflow"
                visits.append((name, _seconds(entered, at), result, sl, result == "answered"))

    # -- the outcome
    status = call.status
    cause = str(ended_data.get("cause") or "")
    lost = cause in ("worker_lost", "node_lost") or ended_data.get("reason") == "worker lost"
    if not inbound:
        outcome: Outcome = _STATUS_OUTCOME.get(status, "failed")
        if outcome == "answered" and call.answered_at:
            person_at = parse_time(call.answered_at)
    elif continuity:
        outcome = "redirected"
    elif person_at is not None:
        outcome = "answered"
    elif lost:
        outcome = "failed"
    elif flow_hung_up or redirected_by_step or cause in ("redirected", "transferred"):
        outcome = "ended_in_flow"
        if last_dial is not None and str(last_dial.get("step")) == current:
            outcome = _DIAL_OUTCOME.get(str(last_dial.get("outcome")), "ended_in_flow")
        if current_verb == "queue" and any(v[2] == "overflow" for v in visits):
            outcome = "no_answer"
    elif not steps and status == "failed":
        outcome = "failed"  # no flow ran: unknown flow, no route
    elif not steps and call.answered_at and status == "completed" and not call.flow:
        outcome = "ended_in_flow"  # a prompt number: the node played it and hung up
    else:
        outcome = "abandoned"

    if current in steps:
        visit = steps[current]
        steps[current] = StepVisit(visit.step, visit.verb, outcome == "abandoned", True)

    talk = 0.0
    if person_at is not None:
        talk = _seconds(person_at, bridge_end or ended)
    for name, (entered, sl) in open_queues.items():
        # Still waiting when the call ended: the caller left (or the node lost the call).
        result = "failed" if outcome == "failed" else "abandoned"
        visits.append((name, _seconds(entered, ended), result, sl, False))
    queues = tuple(
        QueueVisit(name, wait, result, sl, talk if answered else 0.0)
        for name, wait, result, sl, answered in visits
    )
    return CallFacts(
        call_id=call.id,
        account=call.account,
        started=started,
        direction=call.direction,
        number=number,
        flow=call.flow or "",
        outcome=outcome,
        end_step=current,
        rerouted=rerouted,
        speed_of_answer=_seconds(started, person_at) if person_at is not None else None,
        talk=talk,
        webhook_failures=webhook_failures,
        queues=queues,
        steps=tuple(steps.values()),
        menu=tuple(menu),
    )

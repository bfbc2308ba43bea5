"""`dial`: ring targets one after the other (hunt) or all at once, bridge the first that
answers, and route every other outcome on (Smart Routing: busy, no-answer, failed).

`hunt_goes_on` is the per-cause policy without I/O: `stop_on` statuses end the hunt at
once (the callee is busy or declines), `retry_on` (when given) lists the only statuses that
move on to the next target.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from flexvoice.callcontrol import DialAttempt, DialOutcome, DialResult
from flexvoice.flows.base import E164, DialTarget, Next, StepRef, Verb
from flexvoice.units import Duration

if TYPE_CHECKING:
    from flexvoice.flows.context import CallContext

# What an unanswered inbound call is refused with when no branch takes the outcome.
REFUSAL_STATUS: dict[str, int] = {"busy": 486, "no-answer": 480, "failed": 503, "canceled": 487}
BRANCH_FIELD = {
    "busy": "on_busy",
    "no-answer": "on_no_answer",
    "failed": "on_failed",
    "canceled": "on_canceled",
}


def hunt_goes_on(
    attempt: DialAttempt, stop_on: list[int], retry_on: list[int] | None
) -> tuple[bool, str]:
    said = f"{attempt.target} {attempt.outcome} ({attempt.sip_status} {attempt.reason})"
    if attempt.sip_status in stop_on:
        return False, f"{said}, in stop_on: the hunt stops"
    if retry_on is not None and attempt.sip_status not in retry_on:
        return False, f"{said}, not in retry_on: the hunt stops"
    return True, said


class Dial(Verb):
    verb = "dial"
    waits = True

    targets: list[DialTarget] = Field(
        min_length=1, description="E.164 numbers or SIP URIs, rung in this order"
    )
    strategy: Literal["sequential", "simultaneous"] = "sequential"
    ring_timeout: Duration = Field(20.0, description="how long each target rings")
    caller_id: E164 | None = Field(None, description="number shown to the callee; default: caller")
    record: bool = Field(False, description="record the conversation (both sides)")
    recording_channels: Literal["mono", "dual"] = Field(
        "mono",
        description="with record: both sides mixed (mono), or one per channel (dual: the "
        "caller left, the called party right)",
    )
    stop_on: list[int] = Field(
        default_factory=list, description="SIP statuses that end a sequential hunt at once"
    )
    retry_on: list[int] | None = Field(
        None, description="if given, only these SIP statuses move on to the next target"
    )
    then: StepRef | None = Field(None, description="after an answered call ends; default: hang up")
    on_busy: StepRef | None = None
    on_no_answer: StepRef | None = None
    on_failed: StepRef | None = Field(None, description="also taken for busy/no-answer if unset")
    on_canceled: StepRef | None = None

    def describe(self) -> str:
        return f"dial {self.strategy} {', '.join(self.targets)} ({self.ring_timeout:g}s each)"

    def own_branch(self, outcome: DialOutcome) -> StepRef | None:
        return {
            "busy": self.on_busy,
            "no-answer": self.on_no_answer,
            "canceled": self.on_canceled,
        }.get(outcome)

    async def hunt(self, ctx: CallContext) -> tuple[DialResult, list[str]]:
        notes: list[str] = []
        if self.strategy == "simultaneous":
            result = await ctx.dial(self.targets, self.ring_timeout, self.caller_id)
            rung = [f"{a.target} {a.outcome} ({a.sip_status} {a.reason})" for a in result.attempts]
            return result, rung

        attempts: list[DialAttempt] = []
        result = DialResult(attempts=[])
        for target in self.targets:
            result = await ctx.dial([target], self.ring_timeout, self.caller_id)
            attempts += result.attempts
            if result.answered is not None:
                break
            goes_on, note = hunt_goes_on(result.attempts[-1], self.stop_on, self.retry_on)
            notes.append(note)
            if not goes_on:
                break
        result.attempts = attempts
        return result, notes

    async def run(self, ctx: CallContext) -> Next:
        result, notes = await self.hunt(ctx)
        last = result.attempts[-1] if result.attempts else None
        # A hunt ends on its last attempt: busy then no-answer is a no-answer.
        seq = self.strategy == "sequential" and last is not None and result.answered is None
        outcome: DialOutcome = last.outcome if seq and last is not None else result.outcome
        ctx.vars["dial_status"] = outcome
        ctx.vars["dial_sip_status"] = str(last.sip_status if last else 0)
        ctx.vars["dial_reason"] = last.reason if last else ""
        if result.answered is not None:
            ctx.vars["dial_target"] = result.answered_target or ""
            channels = 2 if self.recording_channels == "dual" else 1
            who = await ctx.bridge(result, record=self.record, channels=channels)
            return Next(self.then, f"{result.answered_target} answered; {who} hung up")
        hunt = "; ".join(notes) if notes else outcome
        own = self.own_branch(outcome)
        branch = own or self.on_failed
        if branch is not None:
            ctx.reroute(f"dial {outcome}")
            label = BRANCH_FIELD[outcome] if own else "on_failed"
            return Next(branch, f"{hunt} -> {label}")
        return Next(None, f"{hunt}; no branch for {outcome}", REFUSAL_STATUS[outcome])

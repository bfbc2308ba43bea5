"""A dry run of a flow for the API (`POST /v1/flows/{name}/simulate` and the designer's test
call): what the caller does (`SimulateRequest`), the run under a real-time limit, and what the
answer holds. The run itself is flexvoice.flows.simulate, as `flexvoice flows simulate`."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator

from flexvoice.api.models import Request as RequestModel
from flexvoice.api.models import Resource as ResourceModel
from flexvoice.api.problems import ProblemError
from flexvoice.errors import UserError
from flexvoice.flows.base import DTMF_KEYS
from flexvoice.flows.model import Flow
from flexvoice.flows.simulate import Script, dial_token, simulate_flow

SIMULATE_TIMEOUT_S = 10.0


DigitInput = Annotated[str, Field(max_length=32, description="keys pressed at one input")]


class SimulateRequest(RequestModel):
    """What the simulated caller does; every field is optional (a plain call now)."""

    at: datetime | None = Field(
        None,
        description="when the call happens, with its offset (opening hours are checked at "
        "that time); default: now",
        examples=["2026-12-06T11:00:00+01:00"],
    )
    caller: str = Field("+32470000000", max_length=64, description="the caller's number")
    callee: str = Field("+3226000000", max_length=64, description="the number called")
    digits: list[DigitInput] = Field(
        default_factory=list,
        max_length=50,
        description="one entry per time the flow waits for keys; '' = no key pressed",
    )
    dial: list[Annotated[str, Field(max_length=16)]] = Field(
        default_factory=list,
        max_length=50,
        description="how each dialled target ends: answered, busy, declined, no-answer, "
        "failed, canceled or a SIP status such as 486; unlisted targets answer",
    )
    webhook_answer: Any = Field(None, description="the JSON every webhook step receives")
    continuity: str | None = Field(
        None, max_length=64, description="Voice Continuity forwarding number, when switched on"
    )
    variables: dict[str, Annotated[str, Field(max_length=256)]] = Field(
        default_factory=dict, max_length=50, description="call variables to start with"
    )

    @field_validator("digits")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        for i, d in enumerate(value):
            if any(c not in DTMF_KEYS for c in d):
                raise ValueError(f"item {i}: '{d}' is not DTMF keys (0-9, * and #)")
        return value

    @field_validator("dial")
    @classmethod
    def _outcomes(cls, value: list[str]) -> list[str]:
        for token in value:
            try:
                dial_token(token)
            except UserError as exc:
                raise ValueError(str(exc).removeprefix("--dial: ")) from None
        return value

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give the time with its offset, e.g. 2026-12-06T11:00:00+01:00")
        return value


class SimulateStep(ResourceModel):
    kind: str = Field(description="step (a step ran), action (what the caller hears), failed")
    at: str = Field(description="minutes:seconds into the call")
    step: str | None = None
    verb: str | None = None
    why: str | None = Field(None, description="why the call came to this step")
    text: str | None = Field(None, description="for an action: what happened, in words")


class SimulateResult(ResourceModel):
    flow: str
    at: str = Field(description="the simulated time of the call")
    ended: str = Field(description="why the call ended")
    failed: bool = Field(description="a step failed (the caller heard an apology)")
    path: list[str] = Field(description="the steps taken, in order")
    trace: list[SimulateStep]
    transcript: str = Field(description="the printout of `flexvoice flows simulate`")


async def simulate(flow: Flow, prompts_dir: Path, body: SimulateRequest) -> SimulateResult:
    """Run the flow once as `flexvoice flows simulate` does (no SIP, virtual time)."""
    at = body.at or datetime.now().astimezone().replace(microsecond=0)
    lines: list[str] = []
    trace: list[dict[str, object]] = []
    try:
        reason, failed = await asyncio.wait_for(
            simulate_flow(
                flow,
                prompts_dir,
                at=at,
                caller=body.caller,
                callee=body.callee,
                script=Script(digits=list(body.digits), dial=list(body.dial)),
                webhook_answer=body.webhook_answer,
                continuity=body.continuity,
                variables=dict(body.variables),
                write=lines.append,
                trace=trace,
            ),
            SIMULATE_TIMEOUT_S,
        )
    except TimeoutError:
        raise ProblemError(
            "service-unavailable",
            f"the simulation did not end within {SIMULATE_TIMEOUT_S:g} s of real time; does "
            "the flow wait forever (a queue without max_wait)?",
        ) from None
    return SimulateResult.model_validate(
        {
            "flow": flow.name,
            "at": at.isoformat(),
            "ended": reason,
            "failed": failed,
            "path": [str(t["step"]) for t in trace if t["kind"] == "step"],
            "trace": [{k: str(v) for k, v in t.items()} for t in trace],
            "transcript": "\n".join(lines) + "\n",
        }
    )

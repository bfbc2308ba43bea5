"""Calls: placing one, changing one (hang up, redirect, recording), listing them, a call's
legs, price and events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, HttpUrl, model_validator

from flexvoice.api.models.base import (
    E164,
    CallStatusName,
    FlowName,
    Query,
    Request,
    Resource,
    StatusEvent,
)
from flexvoice.api.models.recordings import RecordingResource


def _default_events() -> list[StatusEvent]:
    return ["completed"]


class CallCreate(Request):
    """Place an outbound call from one of the account's numbers; when it is answered, the flow
    runs on it."""

    to: E164
    from_: E164 = Field(alias="from", description="one of the account's numbers (caller ID)")
    flow: FlowName | None = Field(None, description="name of a flow in flows/")
    flow_inline: dict[str, Any] | None = Field(
        None, description="a flow document (same language as flows/*.yaml), validated first"
    )
    flow_url: HttpUrl | None = Field(
        None, description="URL of a flow document, fetched and validated before the call"
    )
    ring_timeout: int = Field(60, ge=1, le=600, description="seconds to ring before no-answer")
    record: bool = Field(False, description="record the whole call")
    recording_channels: Literal["mono", "dual"] = Field(
        "mono",
        description="with record: both parties mixed (mono), or one party per channel (dual: "
        "the called party left, what it hears right)",
    )
    status_callback: HttpUrl | None = Field(
        None, description="URL that receives signed status callbacks (POST, JSON)"
    )
    status_events: list[StatusEvent] = Field(
        default_factory=_default_events,
        max_length=4,
        description="which events are sent to status_callback",
    )
    variables: dict[str, Annotated[str, Field(max_length=1000)]] = Field(
        default_factory=dict, max_length=50, description="call variables the flow can read"
    )

    @model_validator(mode="after")
    def _one_flow(self) -> CallCreate:
        given = [n for n in ("flow", "flow_inline", "flow_url") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of flow (a flow name), flow_inline (a flow document) or "
                f"flow_url (where to fetch one); got {', '.join(given) or 'none'}"
            )
        return self


class CallUpdate(Request):
    """Hang up (`status: completed`; `canceled` before answer), move the call to a flow, or
    control its whole-call recording (`recording: start|pause|resume|stop`)."""

    status: Literal["completed", "canceled"] | None = None
    flow: FlowName | None = None
    recording: Literal["start", "pause", "resume", "stop"] | None = Field(
        None,
        description="start recording the call (both parties), pause it (silence is recorded "
        "meanwhile), resume or stop it",
    )
    recording_channels: Literal["mono", "dual"] | None = Field(
        None,
        description="with recording: start, both parties mixed (mono, the default) or one "
        "party per channel (dual: this call's party left, what it hears right)",
    )

    @model_validator(mode="after")
    def _one(self) -> CallUpdate:
        given = [v for v in (self.status, self.flow, self.recording) if v is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of status (to hang up), flow (to move the call) or "
                "recording (start, pause, resume, stop)"
            )
        if self.recording_channels is not None and self.recording != "start":
            raise ValueError('recording_channels goes with "recording": "start" only')
        return self


class CallListQuery(Query):
    status: CallStatusName | None = None
    from_: E164 | None = Field(None, alias="from")
    to: E164 | None = None
    since: datetime | None = Field(None, description="calls created at or after (ISO 8601)")
    limit: int = Field(100, ge=1, le=1000)


EndedByName = Literal[
    "caller", "callee", "api", "flow", "worker_lost", "node_shutdown", "node_lost"
]


class CallLegSummary(Resource):
    """One leg a call dialled (a `dial` step's target, a transfer target): also a call
    resource of its own at /v1/calls/{id}."""

    id: str = Field(description="the leg's call id (CA + 32 hex)")
    from_: str = Field(alias="from", description="the caller ID the far end was shown")
    to: str
    status: CallStatusName
    sip_status: int | None = Field(description="the final answer to its INVITE")
    reason: str | None = Field(description="SIP reason of its end: 'Busy Here', ...")
    cause: str | None
    ended_by: EndedByName | None
    answered_at: str | None
    ended_at: str | None
    duration_seconds: int | None = Field(description="seconds from answer to end")
    billable_seconds: int | None
    price_eur: str | None = Field(description="this leg's own price")


class PricePart(Resource):
    call_id: str
    part: Literal["own", "leg"] = Field(description="the call's own leg, or a dialled leg")
    price_eur: str | None


class CallResource(Resource):
    id: str = Field(description="CA + 32 hex, for every leg: inbound, outbound and dialled")
    parent_call_id: str | None = Field(
        None, description="the call that dialled this leg; null for a first leg"
    )
    account: str
    direction: Literal["inbound", "outbound"]
    from_: str = Field(alias="from")
    to: str
    status: CallStatusName
    sip_status: int | None = Field(description="final SIP status (200, 486, 480, 487 ...)")
    reason: str | None = Field(
        None, description="SIP reason of the end: 'Normal call clearing', 'Busy Here' ..."
    )
    cause: str | None
    ended_by: EndedByName | None = Field(
        None, description="who ended the call; every leg of its tree ends with it"
    )
    flow: str | None
    created_at: str
    started_at: str | None
    answered_at: str | None
    ended_at: str | None
    billable_seconds: int | None = Field(
        description="seconds billed: the talk time rounded up by the tariff's increments "
        "(60/60: every started minute); 0 for unanswered calls"
    )
    price_eur: str | None = Field(
        description="price in EUR as a decimal string (never a float), e.g. '0.0900': the "
        "call's own leg plus the legs it dialled (price_breakdown); null until it ended"
    )
    price_breakdown: list[PricePart] = Field(
        default_factory=list, description="the call's own price and each leg's"
    )
    price_note: str | None = Field(
        None,
        description="why price_eur is null when the call ended (e.g. the account's tariff "
        "does not price the destination); null otherwise",
    )
    legs: list[CallLegSummary] = Field(
        default_factory=list, description="the legs this call dialled, in the order rung"
    )
    recordings: list[RecordingResource]
    events_url: str


class CallList(Resource):
    calls: list[CallResource]


class CallEvent(Resource):
    seq: int
    at: str
    kind: str = Field(description="queued, initiated, ringing, answered, step, ended, ...")
    data: dict[str, Any]


class CallEvents(Resource):
    call_id: str
    events: list[CallEvent]

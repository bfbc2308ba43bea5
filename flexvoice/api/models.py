"""Request and response models: they validate requests and they are the OpenAPI schemas, so the
document can never drift from what the server accepts. Requests forbid unknown fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, model_validator

from flexvoice.metering.timing import check_month
from flexvoice.numbers import FLOW_NAME_RE, NumberError, parse_e164


def _e164(value: str) -> str:
    try:
        return parse_e164(value)
    except NumberError as exc:
        # The prefix tells the problem mapper to use the invalid-number type.
        raise ValueError(f"invalid-number: {str(exc).split(': ', 1)[-1]}") from None


E164 = Annotated[
    str,
    Field(
        min_length=1,
        max_length=32,
        description="phone number in E.164 (national Belgian forms are accepted)",
        examples=["+3225551001"],
    ),
    AfterValidator(_e164),
]
FlowName = Annotated[
    str,
    Field(
        pattern=FLOW_NAME_RE.pattern, description="name of a flow in flows/", examples=["support"]
    ),
]
CallStatusName = Literal[
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
StatusEvent = Literal["initiated", "ringing", "answered", "completed"]
Month = Annotated[
    str,
    Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="calendar month YYYY-MM"),
    AfterValidator(check_month),
]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Query(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Resource(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


# ---- calls --------------------------------------------------------------------------------


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

    @model_validator(mode="after")
    def _one(self) -> CallUpdate:
        given = [v for v in (self.status, self.flow, self.recording) if v is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of status (to hang up), flow (to move the call) or "
                "recording (start, pause, resume, stop)"
            )
        return self


class CallListQuery(Query):
    status: CallStatusName | None = None
    from_: E164 | None = Field(None, alias="from")
    to: E164 | None = None
    since: datetime | None = Field(None, description="calls created at or after (ISO 8601)")
    limit: int = Field(100, ge=1, le=1000)


class RecordingResource(Resource):
    id: str
    account: str
    call_id: str
    kind: Literal["message", "call"] = Field(
        description="message: a voicemail (record step); call: the whole call, both parties"
    )
    status: Literal["in-progress", "paused", "completed", "failed", "deleted"]
    started_at: str
    ended_at: str | None
    duration_seconds: float | None = Field(description="seconds of audio in the file")
    size_bytes: int | None
    channels: int
    sha256: str | None = Field(description="SHA-256 of the WAV file, to check a download")
    billable_seconds: int | None = Field(
        description="seconds billed (every started minute under the usual tariff)"
    )
    price_eur: str | None = Field(description="price in EUR as a decimal string")
    note: str | None = Field(
        description="what happened out of the ordinary (a header repaired after a crash, why "
        "it failed, why it was deleted)"
    )
    created_at: str
    deleted_at: str | None
    url: str = Field(description="the audio (WAV, supports range requests)")


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


# ---- numbers ------------------------------------------------------------------------------


class NumberPut(Request):
    """What runs when the number rings: exactly one of a flow or a prompt."""

    flow: FlowName | None = None
    prompt: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,127}$")] | None = None

    @model_validator(mode="after")
    def _one(self) -> NumberPut:
        if (self.flow is None) == (self.prompt is None):
            raise ValueError("give exactly one of flow (a flow name) or prompt (a prompt name)")
        return self


class ContinuityPut(Request):
    """Voice Continuity: while active, every call to the number goes to forward_to."""

    forward_to: E164 | None = Field(
        None, description="where calls go; may be left out to keep the last one"
    )
    active: bool


class Continuity(Resource):
    forward_to: str | None
    active: bool


class NumberResource(Resource):
    number: str
    account: str
    flow: str | None
    prompt: str | None
    managed_by: Literal["numbers.yaml", "api"]
    continuity: Continuity
    active_from: str


class NumberList(Resource):
    numbers: list[NumberResource]


# ---- recordings ---------------------------------------------------------------------------


class RecordingList(Resource):
    recordings: list[RecordingResource]


class RecordingListQuery(Query):
    call_id: str | None = Field(None, max_length=64)
    limit: int = Field(100, ge=1, le=1000)


# ---- usage --------------------------------------------------------------------------------


class UsageQuery(Query):
    month: Month
    service: str | None = Field(None, max_length=64, description="only this service's line")


class UsageExportQuery(Query):
    month: Month
    format: Literal["csv", "json"] = "csv"
    detail: Literal["0", "1", "true", "false"] = "0"


class UsageLine(Resource):
    service: str = Field(
        description="the tariff's service, or subtotal, vat, total, 'unrated: ...'"
    )
    row: Literal["service", "minimum", "subtotal", "vat", "total", "unrated"]
    quantity: str | None = Field(
        description="in `unit`s, a decimal string; for the vat row, the amount it is charged on"
    )
    unit: str
    unit_price_eur: str | None = Field(
        description="decimal string; null when the month mixes tariff versions or for totals"
    )
    amount_eur: str | None = Field(
        description="decimal string rounded to cents; null for events the tariff does not price"
    )


class UsageStatement(Resource):
    account: str
    month: str
    currency: Literal["EUR"]
    lines: list[UsageLine]


# ---- flows --------------------------------------------------------------------------------


class FlowProblem(Resource):
    line: int = Field(description="1-based line in the flow document; 0: the whole document")
    column: int
    message: str = Field(description="what is wrong and how to fix it (as the CLI prints it)")
    severity: Literal["error", "warning"]


class FlowResource(Resource):
    name: str = Field(description="the flow's name (its `flow:` key)")
    file: str = Field(description="the file in the node's flows folder")
    description: str
    valid: bool = Field(description="the file passes `flexvoice flows validate`")
    digest: str = Field(description="sha256 of the file's text")
    serving_digest: str | None = Field(
        description="sha256 of the version calls run now (the last valid one); null when the "
        "node's flow runtime has not loaded this flow"
    )
    problems: list[FlowProblem] = Field(description="errors and warnings, as the CLI lists them")
    yaml_url: str
    diagram_url: str


class FlowList(Resource):
    flows: list[FlowResource]


# ---- messages -----------------------------------------------------------------------------

MessageStatusName = Literal[
    "queued", "sending", "sent", "delivered", "undelivered", "failed", "received"
]


class MessageCreate(Request):
    """Send an SMS from one of the account's numbers or an alphanumeric sender it may use."""

    to: E164 = Field(description="a mobile number")
    from_: str = Field(
        alias="from",
        min_length=1,
        max_length=32,
        description="one of the account's numbers (E.164), or an alphanumeric sender the "
        "operator allowed for the account (1-11 letters, digits, spaces)",
        examples=["+3226001000", "ACME"],
    )
    body: str = Field(description="the text, 1 to 1,600 characters; long texts go in parts")
    status_callback: HttpUrl | None = Field(
        None, description="POSTed (signed) at each status change: sent, delivered, ..."
    )


class MessageResource(Resource):
    id: str
    direction: Literal["outbound", "inbound"]
    from_: str = Field(alias="from")
    to: str
    body: str = Field(description="the text (a verification code shows masked)")
    status: MessageStatusName = Field(
        description="queued -> sending -> sent -> delivered | undelivered | failed; inbound: "
        "received. A message in parts has the status of its worst part."
    )
    segments: int = Field(description="parts sent (what is billed)")
    encoding: Literal["GSM-7", "UCS-2"]
    price_eur: str | None = Field(description="decimal string, segments x the tariff's price")
    price_note: str | None = None
    error_code: int | None = Field(description="Twilio's codes: 21610 opted out, 30003 ...")
    error_message: str | None
    created_at: str | None
    updated_at: str | None
    sent_at: str | None = Field(description="when the gateway accepted the last part")


class MessageList(Resource):
    messages: list[MessageResource]


class MessageListQuery(Query):
    status: MessageStatusName | None = None
    to: E164 | None = None
    since: datetime | None = Field(None, description="messages created at or after (ISO 8601)")
    limit: int = Field(100, ge=1, le=1000)


# ---- verifications ------------------------------------------------------------------------

VerificationStatusName = Literal[
    "pending", "approved", "canceled", "expired", "max_attempts_reached"
]


class VerificationCreate(Request):
    """Send a one-time code to `to` by SMS or by a call that speaks it."""

    to: E164
    channel: Literal["sms", "voice"] = "sms"
    code_length: int = Field(6, ge=4, le=10)
    locale: Literal["nl", "fr", "en", "de"] = "en"


class VerificationCheck(Request):
    code: str = Field(min_length=1, max_length=10, description="the digits the user typed")


class VerificationUpdate(Request):
    status: Literal["canceled"]


class VerificationResource(Resource):
    id: str
    to: str
    channel: Literal["sms", "voice"]
    locale: str
    status: VerificationStatusName
    sends: int = Field(description="how many times the code was sent (a repeat resends it)")
    checks_left: int
    created_at: str
    expires_at: str
    price_eur: str | None = Field(description="the verification request's own price")
    message_id: str | None = Field(description="the SMS that carried the code (channel sms)")
    call_id: str | None = Field(description="the call that spoke the code (channel voice)")

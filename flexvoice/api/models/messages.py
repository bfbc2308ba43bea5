"""Messages: sending an SMS, a message as the API shows it, lists of them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, HttpUrl

from flexvoice.api.models.base import (
    E164,
    Query,
    Request,
    Resource,
)

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

"""Verifications: one-time codes by SMS or voice."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flexvoice.api.models.base import (
    E164,
    Request,
    Resource,
)

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

"""What the resources' request and response models share: the base classes (requests and
queries forbid unknown fields) and the field types (E.164, flow name, month, call status)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from flexvoice.callcontrol import CallStatus
from flexvoice.metering.destinations import BadNumber, classify
from flexvoice.metering.timing import check_month
from flexvoice.numbers import FLOW_NAME_RE, NumberError, parse_e164


def _e164(value: str) -> str:
    try:
        # A valid number is known from the cached classification the pricing reads next
        # (one phonenumbers parse per number, not one here and one there); a refused one
        # gets parse_e164's wording.
        classify(value)
        return value
    except BadNumber:
        pass
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
# The statuses of a call (flexvoice.callcontrol holds the list).
CallStatusName = CallStatus
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

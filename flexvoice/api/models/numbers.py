"""Numbers: what runs when one rings, and its Voice Continuity switch."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from flexvoice.api.models.base import (
    E164,
    FlowName,
    Request,
    Resource,
)
from flexvoice.numbers import PROMPT_NAME_RE


class NumberPut(Request):
    """What runs when the number rings: exactly one of a flow or a prompt."""

    flow: FlowName | None = None
    prompt: Annotated[str, Field(pattern=PROMPT_NAME_RE.pattern)] | None = None

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

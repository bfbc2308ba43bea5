"""A flow file: its top-level keys, and the validated flow the runtime runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flexvoice.flows.base import Lang, StepRef, Verb, prompt_names
from flexvoice.flows.verbs.hours import Hours
from flexvoice.numbers import FLOW_NAME_RE


class FlowHeader(BaseModel):
    """The keys of a flow file around its steps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flow: str = Field(description="the flow's name: numbers and API calls refer to it")
    description: str = ""
    start: StepRef = Field(description="the first step of every call")
    language: Lang = Field("en", description="the call's language until a step sets another")
    timezone: str = Field("Europe/Brussels", description="for the weekday, time and date variables")
    variables: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="call variables every call starts with"
    )
    steps: dict[str, Any] = Field(min_length=1, description="step name to a one-verb mapping")

    @field_validator("flow")
    @classmethod
    def _name(cls, value: str) -> str:
        if not FLOW_NAME_RE.match(value):
            raise ValueError(
                f"is not a flow name (got {value!r}); use lower-case letters, digits, - and _, "
                "at most 63 characters"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return Hours._zone(value)


@dataclass(frozen=True)
class Flow:
    """A flow that passed validation; immutable, so a running call keeps its version."""

    name: str
    description: str
    start: str
    language: str
    timezone: str
    variables: dict[str, str]
    steps: dict[str, Verb]
    source: str
    digest: str  # sha256 of the file's text: which version a call ran
    problems: list[Any] = field(default_factory=list)  # warnings kept for the log

    def languages(self) -> list[str]:
        langs = [self.language]
        for verb in self.steps.values():
            langs += [lang for lang in verb.languages() if lang not in langs]
        return langs

    def prompts(self) -> list[str]:
        names: list[str] = []
        for verb in self.steps.values():
            for _, name in verb.prompt_refs():
                if name not in names:
                    names.append(name)
        return names


def prompt_list(value: Any) -> list[str]:
    return prompt_names(value)

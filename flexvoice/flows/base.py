"""What every verb shares: field types, branches, positioned checks, and the run contract.

A verb is a small pydantic model (its YAML fields) plus `run(ctx)`, which drives the call
through `ctx` and returns `Next`: the step to go to and, in words, why. Branch fields are
found by name (`then`, `default`, `on_*`, `when_*`), so the validator, the diagram and the
loop analysis all see the same edges without each verb listing them twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from flexvoice import e164
from flexvoice.e164 import E164_RE

if TYPE_CHECKING:
    from flexvoice.flows.context import CallContext

DTMF_KEYS = "0123456789*#"
SIP_URI_RE = re.compile(r"^sips?:([^@\s]+@)?[A-Za-z0-9.\-\[\]:]+(;[^\s]*)?$")
STEP_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
VAR_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LANG_RE = re.compile(r"^[a-z]{2}$")


def _e164(value: str) -> str:
    if not e164.is_e164(value):
        raise ValueError(f"is not an E.164 number (got {value!r}); {e164.hint(value)}")
    if not e164.is_possible(value):
        raise ValueError(f"is not a possible phone number, too short or too long (got {value!r})")
    return value


def _dial_target(value: str) -> str:
    if value.startswith(("sip:", "sips:")):
        if not SIP_URI_RE.match(value):
            raise ValueError(
                f"is not a SIP URI (got {value!r}); write e.g. sip:desk@pbx.example.be"
            )
        return value
    return _e164(value)


def _lang(value: str) -> str:
    if not LANG_RE.match(value):
        raise ValueError(f"is not a language code (got {value!r}); use two letters: nl, fr, en")
    return value


def _var_name(value: str) -> str:
    if not VAR_NAME_RE.match(value):
        raise ValueError(f"is not a variable name (got {value!r}); use letters, digits and _")
    return value


E164 = Annotated[
    str,
    AfterValidator(_e164),
    WithJsonSchema({"type": "string", "pattern": E164_RE.pattern, "examples": ["+3226009999"]}),
]
DialTarget = Annotated[
    str,
    AfterValidator(_dial_target),
    WithJsonSchema(
        {
            "type": "string",
            "description": "an E.164 number (+3226009999) or a SIP URI (sip:desk@pbx.example.be)",
            "pattern": r"^(\+[1-9]\d{6,14}|sips?:\S+)$",
        }
    ),
]
Lang = Annotated[
    str, AfterValidator(_lang), WithJsonSchema({"type": "string", "pattern": LANG_RE.pattern})
]
VarName = Annotated[
    str,
    AfterValidator(_var_name),
    WithJsonSchema({"type": "string", "pattern": VAR_NAME_RE.pattern}),
]
StepRef = Annotated[str, Field(description="the name of a step in this flow", min_length=1)]
# One prompt name or several played in order; names of WAV files in ivr_prompts/<language>/.
Prompts = str | list[str]
# Text spoken with espeak-ng: one text, or one per language ({nl: ..., fr: ...}).
Text = str | dict[str, str]


def prompt_names(value: Prompts | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


@dataclass(frozen=True)
class Next:
    """Where the call goes after a step; `step=None` ends the call."""

    step: str | None
    why: str
    # For `step=None`: the SIP status to refuse an unanswered call with (BYE if answered).
    sip_status: int | None = None


class StepFailed(Exception):
    """A step could not do its job (prompt missing, webhook down): on_error or apology."""


@dataclass(frozen=True)
class Branch:
    label: str  # what the diagram writes on the edge: "then", "on_busy", "1", ...
    path: tuple[str | int, ...]  # field path inside the verb, for positioned errors
    target: str


@dataclass(frozen=True)
class Finding:
    path: tuple[str | int, ...]  # inside the verb's mapping
    message: str
    key: bool = False  # point at the key rather than the value
    severity: str = "error"


BRANCH_PREFIXES = ("on_", "when_")
BRANCH_NAMES = ("then", "default")


class Verb(BaseModel):
    """Base of every verb model. Subclasses set `verb` and implement `run`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    verb: ClassVar[str]
    summary: ClassVar[str] = ""
    # The step waits for the caller (digits, speech, ringing): a loop through it is not a
    # busy loop. Used by the loop warning.
    waits: ClassVar[bool] = False
    # The step can finish the call by itself (hangup, redirect): a loop through it has an exit.
    ends_call: ClassVar[bool] = False

    on_error: StepRef | None = Field(
        None,
        description="step to go to when this step fails at run time (missing prompt, "
        "unreachable webhook); without it the caller hears an apology and the call ends",
    )

    @classmethod
    def coerce(cls, raw: Any) -> Any:
        """Shorthands (`goto: step`, `hangup:` with nothing) before validation."""
        return {} if raw is None else raw

    def branches(self) -> list[Branch]:
        out: list[Branch] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if not isinstance(value, str):
                continue
            if name in BRANCH_NAMES or name.startswith(BRANCH_PREFIXES):
                out.append(Branch(name, (name,), value))
        return out

    def prompt_refs(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """(path, prompt name) for every prompt file this step plays."""
        for name in type(self).model_fields:
            if name in ("prompt", "music") or name.endswith("_prompt"):
                value = getattr(self, name)
                if isinstance(value, str):
                    yield (name,), value
                elif isinstance(value, list):
                    for i, item in enumerate(value):
                        yield (name, i), item

    def languages(self) -> list[str]:
        """Languages this step can switch the call to (for the prompt check)."""
        return []

    def check(self) -> list[Finding]:
        """Positioned checks beyond field types (DTMF keys, opening hours)."""
        return []

    def describe(self) -> str:
        """One line for the diagram."""
        return self.summary

    async def run(self, ctx: CallContext) -> Next:
        raise NotImplementedError


def require_one(
    fields: dict[str, object], names: tuple[str, ...], *, optional: bool = False
) -> None:
    given = [n for n in names if fields.get(n) is not None]
    if len(given) > 1:
        raise ValueError(f"give either {' or '.join(names)}, not both")
    if not given and not optional:
        raise ValueError(f"give {' or '.join(names)}")


VerbFactory = Callable[[Any], Verb]

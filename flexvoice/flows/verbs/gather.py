"""`gather`: collect several digits into a variable (account numbers, PINs), with min/max
length, an optional pattern, a terminator key and retries."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import Field, field_validator, model_validator

from flexvoice.flows.base import DTMF_KEYS, Next, Prompts, StepRef, Text, VarName, Verb, require_one
from flexvoice.flows.verbs.retries import ask_with_retries
from flexvoice.flows.verdict import Verdict, judge_gather
from flexvoice.units import Duration

if TYPE_CHECKING:
    from flexvoice.flows.context import CallContext


class Gather(Verb):
    verb = "gather"
    waits = True

    prompt: Prompts | None = None
    say: Text | None = None
    variable: VarName = Field("digits", description="where the digits go ({digits} in texts)")
    min_digits: int = Field(1, ge=1, le=32)
    max_digits: int = Field(10, ge=1, le=32)
    timeout: Duration = Field(5.0, description="wait for the first key after the prompt")
    inter_digit_timeout: Duration = Field(3.0, description="wait between keys")
    terminator: str = Field("#", description="key that ends the input early; '' for none")
    pattern: str | None = Field(None, description="regular expression the digits must match")
    retries: int = Field(2, ge=0, le=10)
    invalid_prompt: Prompts | None = None
    invalid_say: Text | None = None
    no_input_prompt: Prompts | None = None
    no_input_say: Text | None = None
    then: StepRef | None = None
    on_failure: StepRef | None = None

    @field_validator("terminator")
    @classmethod
    def _terminator(cls, value: str) -> str:
        if any(c not in DTMF_KEYS for c in value):
            raise ValueError(f"must be DTMF keys 0-9, * or #, usually '#' (got {value!r})")
        return value

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"is not a regular expression: {exc} (got {value!r})") from None
        return value

    @model_validator(mode="after")
    def _sane(self) -> Gather:
        require_one({"prompt": self.prompt, "say": self.say}, ("prompt", "say"))
        if self.min_digits > self.max_digits:
            raise ValueError("min_digits is larger than max_digits")
        return self

    def describe(self) -> str:
        return f"gather {self.min_digits}-{self.max_digits} digits into {self.variable}"

    async def run(self, ctx: CallContext) -> Next:
        await ctx.ensure_answered()

        async def ask() -> Verdict:
            got = await ctx.leg.collect_digits(
                max_digits=self.max_digits,
                timeout=self.timeout,
                inter_digit_timeout=self.inter_digit_timeout,
                terminators=self.terminator,
                prompts=await ctx.prompt_paths(self.prompt, self.say),
            )
            digits = got.digits.rstrip(self.terminator) if self.terminator else got.digits
            return judge_gather(
                digits,
                min_digits=self.min_digits,
                max_digits=self.max_digits,
                pattern=self.pattern,
            )

        verdict, tries = await ask_with_retries(ctx, self, ask, lambda v: f"'{v.value}'")
        if verdict is not None:
            ctx.vars[self.variable] = verdict.value
            return Next(self.then, f"{self.variable}={verdict.value}")
        why = f"no valid input after {len(tries)} tries ({', '.join(tries)})"
        return Next(self.on_failure, why, sip_status=480)

"""`menu`: play a prompt, take one key, go to the step its option names; retries with
invalid / no-input prompts, then `on_failure`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from flexvoice.flows.base import (
    Branch,
    Finding,
    Next,
    Prompts,
    StepRef,
    Text,
    VarName,
    Verb,
    require_one,
)
from flexvoice.flows.verbs.retries import ask_with_retries
from flexvoice.flows.verdict import Verdict, bad_dtmf_key, judge_menu
from flexvoice.units import Duration

if TYPE_CHECKING:
    from flexvoice.flows.context import CallContext


class Menu(Verb):
    verb = "menu"
    waits = True

    prompt: Prompts | None = Field(None, description="prompt(s) that list the options")
    say: Text | None = None
    options: dict[str, StepRef] = Field(
        min_length=1, description='DTMF key to step: {"1": orders, "2": shop, "0": staff}'
    )
    timeout: Duration = Field(5.0, description="wait for a key after the prompt")
    retries: int = Field(2, ge=0, le=10, description="extra tries after a wrong or no key")
    invalid_prompt: Prompts | None = None
    invalid_say: Text | None = None
    no_input_prompt: Prompts | None = None
    no_input_say: Text | None = None
    variable: VarName | None = Field(None, description="also keep the key in this variable")
    on_failure: StepRef | None = Field(None, description="after the last try; default: hang up")

    @model_validator(mode="after")
    def _one_source(self) -> Menu:
        require_one({"prompt": self.prompt, "say": self.say}, ("prompt", "say"))
        require_one(
            {"invalid_prompt": self.invalid_prompt, "invalid_say": self.invalid_say},
            ("invalid_prompt", "invalid_say"),
            optional=True,
        )
        require_one(
            {"no_input_prompt": self.no_input_prompt, "no_input_say": self.no_input_say},
            ("no_input_prompt", "no_input_say"),
            optional=True,
        )
        return self

    def check(self) -> list[Finding]:
        found = []
        for key in self.options:
            msg = bad_dtmf_key(key)
            if msg:
                found.append(Finding(("options", key), msg, key=True))
        return found

    def branches(self) -> list[Branch]:
        keys = [Branch(k, ("options", k), v) for k, v in self.options.items()]
        return keys + super().branches()

    def describe(self) -> str:
        return f"menu, {self.retries + 1} tries of {self.timeout:g}s"

    async def run(self, ctx: CallContext) -> Next:
        await ctx.ensure_answered()

        async def ask() -> Verdict:
            got = await ctx.leg.collect_digits(
                max_digits=1,
                timeout=self.timeout,
                terminators="",
                prompts=await ctx.prompt_paths(self.prompt, self.say),
            )
            return judge_menu(got.digits, self.options)

        verdict, tries = await ask_with_retries(ctx, self, ask, lambda v: f"key {v.value}")
        if verdict is not None:
            if self.variable:
                ctx.vars[self.variable] = verdict.value
            ctx.vars["digits"] = verdict.value
            ctx.trace("menu", {"step": ctx.step, "option": verdict.value})
            return Next(self.options[verdict.value], f"digit {verdict.value}")
        why = f"no valid choice after {len(tries)} tries ({', '.join(tries)})"
        ctx.trace("menu", {"step": ctx.step, "option": "none"})
        return Next(self.on_failure, why, sip_status=480)

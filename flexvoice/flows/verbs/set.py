"""`set`: call variables (`{name}` in texts and webhooks) and the call's language."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from flexvoice.flows.base import VAR_NAME_RE, Finding, Lang, Next, StepRef, Verb

if TYPE_CHECKING:
    from flexvoice.flows.context import CallContext


class Set(Verb):
    verb = "set"

    variables: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="values may use {other_variable}"
    )
    language: Lang | None = Field(None, description="prompts and say: texts follow it")
    then: StepRef | None = None

    def languages(self) -> list[str]:
        return [self.language] if self.language else []

    def check(self) -> list[Finding]:
        return [
            Finding(("variables", k), f"'{k}' is not a variable name; use letters, digits, _", True)
            for k in self.variables
            if not VAR_NAME_RE.match(k)
        ]

    def describe(self) -> str:
        parts = [f"language={self.language}"] if self.language else []
        parts += [f"{k}={v}" for k, v in self.variables.items()]
        return "set " + ", ".join(parts)

    async def run(self, ctx: CallContext) -> Next:
        done = []
        for name, value in self.variables.items():
            text = ctx.interpolate(value if isinstance(value, str) else str(value).lower())
            ctx.vars[name] = text
            done.append(f"{name}={text}")
        if self.language:
            ctx.language = self.language
            done.append(f"language={self.language}")
        return Next(self.then, "set " + ", ".join(done) if done else "nothing to set")

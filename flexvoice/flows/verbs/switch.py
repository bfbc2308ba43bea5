"""`switch`: branch on a variable: caller, callee, digits, language, weekday, time, or any
variable set by `set`, `gather`, `menu` or a webhook. Exact cases first, then the longest
matching prefix (`+32` for Belgian callers), then `default`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from flexvoice.flows.base import Branch, Next, StepRef, VarName, Verb

if TYPE_CHECKING:
    from flexvoice.flows.context import CallContext


def choose(value: str, cases: dict[str, str], prefixes: dict[str, str]) -> tuple[str | None, str]:
    if value in cases:
        return cases[value], f"= '{value}'"
    for prefix in sorted(prefixes, key=len, reverse=True):
        if value.startswith(prefix):
            return prefixes[prefix], f"starts with '{prefix}'"
    return None, "matches no case"


class Switch(Verb):
    verb = "switch"

    variable: VarName = Field(description="caller, callee, digits, language, weekday, time, ...")
    cases: dict[str, StepRef] = Field(default_factory=dict, description="exact value to step")
    prefixes: dict[str, StepRef] = Field(
        default_factory=dict, description="value prefix to step, e.g. {'+32': belgium}"
    )
    default: StepRef | None = Field(None, description="when nothing matches; default: hang up")

    def branches(self) -> list[Branch]:
        out = [Branch(f"= {k}", ("cases", k), v) for k, v in self.cases.items()]
        out += [Branch(f"{k}…", ("prefixes", k), v) for k, v in self.prefixes.items()]
        return out + super().branches()

    def describe(self) -> str:
        return f"switch on {self.variable}"

    async def run(self, ctx: CallContext) -> Next:
        value = ctx.variable(self.variable)
        step, how = choose(value, self.cases, self.prefixes)
        if step is None:
            return Next(self.default, f"{self.variable}='{value}' {how} -> default")
        return Next(step, f"{self.variable}='{value}' {how}")

"""`goto`: jump to another step (`goto: menu`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flexvoice.flows.base import Branch, Next, StepRef, Verb

if TYPE_CHECKING:
    from flexvoice.flows.context import CallContext


class Goto(Verb):
    verb = "goto"
    summary = "go to"

    step: StepRef

    @classmethod
    def coerce(cls, raw: Any) -> Any:
        return {"step": raw} if isinstance(raw, str) else super().coerce(raw)

    def branches(self) -> list[Branch]:
        return [Branch("goto", ("step",), self.step), *super().branches()]

    async def run(self, ctx: CallContext) -> Next:
        return Next(self.step, "goto")

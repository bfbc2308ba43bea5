"""`answer`: pick up the call (200 OK) before anything else happens."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flexvoice.flows.base import Next, StepRef, Verb

if TYPE_CHECKING:
    from flexvoice.flows.context import CallContext


class Answer(Verb):
    verb = "answer"
    summary = "answer the call"

    then: StepRef | None = None

    async def run(self, ctx: CallContext) -> Next:
        await ctx.ensure_answered()
        return Next(self.then, "answered")

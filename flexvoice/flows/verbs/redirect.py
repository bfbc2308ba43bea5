"""`redirect`: send the call elsewhere: 302 before answer (the network reroutes, no media
through the engine), a blind transfer (REFER) once answered."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from flexvoice.flows.base import DialTarget, Next, Verb

if TYPE_CHECKING:
    from flexvoice.flows.context import CallContext


class Redirect(Verb):
    verb = "redirect"
    ends_call = True

    to: DialTarget = Field(description="E.164 number or SIP URI the call is sent to")

    @classmethod
    def coerce(cls, raw: Any) -> Any:
        return {"to": raw} if isinstance(raw, str) else super().coerce(raw)

    def describe(self) -> str:
        return f"redirect to {self.to}"

    async def run(self, ctx: CallContext) -> Next:
        how = await ctx.redirect(self.to)
        return Next(None, f"{how} to {self.to}")

"""`sms`: send a text message during the call, through the same path and billing as
POST /v1/messages (store, queue, gateway, one `sms` usage event per message)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import Field

from flexvoice import e164
from flexvoice.flows.base import Finding, Next, StepFailed, StepRef, Text, Verb

if TYPE_CHECKING:
    from flexvoice.flows.context import CallContext

_VARIABLE_ONLY = re.compile(r"^\{[A-Za-z_][A-Za-z0-9_]*\}$")


class Sms(Verb):
    verb = "sms"

    to: str = Field("{caller}", description="E.164 number or a {variable}; by default the caller")
    body: Text = Field(description="the text, with {variables}; or one per language")
    from_: str | None = Field(
        None,
        alias="from",
        description="one of the account's numbers or an allowed alphanumeric sender; by "
        "default the account's number on this call",
    )
    then: StepRef | None = None
    on_failure: StepRef | None = Field(None, description="the message could not be sent")

    def check(self) -> list[Finding]:
        if e164.is_e164(self.to) or _VARIABLE_ONLY.match(self.to):
            return []
        return [Finding(("to",), f"'{self.to}' is neither an E.164 number nor a {{variable}}")]

    def describe(self) -> str:
        return f"sms to {self.to}"

    async def run(self, ctx: CallContext) -> Next:
        to = ctx.interpolate(self.to)
        body = ctx.interpolate(ctx.text_for(self.body))
        ours = ctx.leg.callee if ctx.leg.direction == "inbound" else ctx.leg.caller
        sender = ctx.interpolate(self.from_) if self.from_ else ours
        try:
            message_id, segments = await ctx.send_sms(sender, to, body)
        except StepFailed as exc:
            if self.on_failure is None:
                raise
            return Next(self.on_failure, f"sms not sent ({exc}) -> on_failure")
        ctx.vars["sms_id"] = message_id
        return Next(self.then, f"sms {message_id} to {to} queued ({segments} segment(s))")

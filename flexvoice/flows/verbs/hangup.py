"""`hangup`: end the call (BYE once answered; a final SIP status before that)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from flexvoice.flows.base import Next, Verb

if TYPE_CHECKING:
    from flexvoice.flows.context import CallContext


class Hangup(Verb):
    verb = "hangup"
    summary = "hang up"
    ends_call = True

    status: int | None = Field(
        None,
        ge=400,
        le=699,
        description="SIP status for a call not yet answered (486 busy, 480 unavailable, "
        "603 decline); default 480",
    )

    async def run(self, ctx: CallContext) -> Next:
        return Next(None, "hangup step", sip_status=self.status or 480)

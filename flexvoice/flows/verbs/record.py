"""`record`: a voicemail message (beep, record until a key, silence of the line or
max_length), or `mode: call` to record the rest of the call in the background."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from flexvoice.flows.base import Next, Prompts, StepRef, Text, VarName, Verb, require_one
from flexvoice.units import Duration

if TYPE_CHECKING:
    from flexvoice.flows.context import CallContext


class Record(Verb):
    verb = "record"
    waits = True

    mode: Literal["message", "call"] = Field(
        "message", description="message: a voicemail now; call: record the rest of the call"
    )
    channels: Literal["mono", "dual"] = Field(
        "mono",
        description="mode call: both parties mixed (mono), or one per channel (dual: the "
        "caller left, what it hears right)",
    )
    prompt: Prompts | None = Field(None, description="played before the beep")
    say: Text | None = None
    max_length: Duration = Field(120.0, description="longest message")
    beep: bool = True
    stop_on_dtmf: bool = Field(True, description="a key ends the message")
    variable: VarName = Field(
        "recording",
        description="holds the recording's id afterwards (GET /v1/recordings/{id})",
    )
    status_callback: str | None = Field(
        None,
        description="URL for the signed recording.completed / recording.failed webhook "
        "(default: the call's status_callback, if any)",
    )
    then: StepRef | None = None

    @field_validator("status_callback")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"is not an http:// or https:// URL (got {value!r})")
        return value

    @model_validator(mode="after")
    def _sources(self) -> Record:
        require_one({"prompt": self.prompt, "say": self.say}, ("prompt", "say"), optional=True)
        return self

    def describe(self) -> str:
        if self.mode == "call":
            return "record the whole call"
        return f"record a message (max {self.max_length:g}s)"

    async def run(self, ctx: CallContext) -> Next:
        await ctx.ensure_answered()
        await ctx.play(self.prompt, self.say, optional=True)
        if self.mode == "call":
            channels = 2 if self.channels == "dual" else 1
            row = await ctx.start_call_recording(self.status_callback, channels)
            ctx.vars[self.variable] = row.id
            return Next(self.then, "recording the call")
        row, path = ctx.open_recording(self.status_callback)
        ctx.vars[self.variable] = row.id
        try:
            result = await ctx.leg.record(
                path, max_length=self.max_length, beep=self.beep, stop_on_dtmf=self.stop_on_dtmf
            )
        finally:
            # Also when the caller hangs up mid-message: what was said is kept and billed.
            row = await ctx.close_recording(row)
        seconds = row.duration_seconds or 0.0
        return Next(self.then, f"recorded {seconds:.0f}s, stopped by {result.stopped_by}")

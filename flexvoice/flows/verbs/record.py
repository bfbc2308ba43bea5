"""`record`: a voicemail message (beep, record until a key, silence of the line or
max_length), or `mode: call` to record the rest of the call in the background."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from flexvoice.flows.base import Next, Prompts, StepRef, Text, VarName, Verb, require_one
from flexvoice.units import Duration

if TYPE_CHECKING:
    from flexvoice.flows.interpreter import CallContext


class Record(Verb):
    verb = "record"
    waits = True

    mode: Literal["message", "call"] = Field(
        "message", description="message: a voicemail now; call: record the rest of the call"
    )
    prompt: Prompts | None = Field(None, description="played before the beep")
    say: Text | None = None
    max_length: Duration = Field(120.0, description="longest message")
    beep: bool = True
    stop_on_dtmf: bool = Field(True, description="a key ends the message")
    variable: VarName = Field("recording", description="holds the file's path afterwards")
    then: StepRef | None = None

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
        path = ctx.recording_path()
        ctx.vars[self.variable] = str(path)
        if self.mode == "call":
            await ctx.start_call_recording(path)
            return Next(self.then, "recording the call")
        started = ctx.now()
        result = await ctx.leg.record(
            path, max_length=self.max_length, beep=self.beep, stop_on_dtmf=self.stop_on_dtmf
        )
        ctx.recorded(started, result.duration)
        return Next(self.then, f"recorded {result.duration:.0f}s, stopped by {result.stopped_by}")

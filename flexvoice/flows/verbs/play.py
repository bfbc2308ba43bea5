"""`play`: prompt files from ivr_prompts/, or `say:` text spoken in the call's language."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from flexvoice.flows.base import Next, Prompts, StepRef, Text, Verb, prompt_names, require_one

if TYPE_CHECKING:
    from flexvoice.flows.context import CallContext


class Play(Verb):
    verb = "play"

    prompt: Prompts | None = Field(None, description="prompt name(s) in ivr_prompts/<language>/")
    say: Text | None = Field(None, description="text spoken with espeak-ng, or one per language")
    loop: int = Field(1, ge=1, le=100, description="how many times to play it")
    then: StepRef | None = None

    @classmethod
    def coerce(cls, raw: Any) -> Any:
        # `play: closed` is `play: {prompt: closed}`
        if isinstance(raw, str | list):
            return {"prompt": raw}
        return super().coerce(raw)

    @model_validator(mode="after")
    def _one_source(self) -> Play:
        require_one({"prompt": self.prompt, "say": self.say}, ("prompt", "say"))
        return self

    def describe(self) -> str:
        if self.prompt is not None:
            return "play " + ", ".join(prompt_names(self.prompt))
        return "say text"

    async def run(self, ctx: CallContext) -> Next:
        await ctx.ensure_answered()
        for _ in range(self.loop):
            await ctx.play(self.prompt, self.say)
        what = ", ".join(prompt_names(self.prompt)) if self.prompt else "text"
        return Next(self.then, f"played {what} ({ctx.language})")

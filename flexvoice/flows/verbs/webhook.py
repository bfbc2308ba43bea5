"""`webhook`: POST the call's context to the business's URL; its JSON answer may name the
next step (`{"next": "vip"}`), set variables (`{"variables": {...}}`) and the language.
A timeout, an error status or a bad answer takes `on_failure`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from flexvoice.flows.base import LANG_RE, Branch, Next, StepFailed, StepRef, Verb
from flexvoice.units import Duration

if TYPE_CHECKING:
    from flexvoice.flows.context import CallContext


class Webhook(Verb):
    verb = "webhook"

    url: str = Field(description="http(s) URL that receives the call's context as JSON")
    timeout: Duration = Field(5.0, description="give up and take on_failure after this")
    headers: dict[str, str] = Field(default_factory=dict)
    next_steps: list[StepRef] = Field(
        default_factory=list,
        description="steps the answer may name in 'next' (drawn in the diagram); if given, "
        "an answer naming another step takes on_failure",
    )
    then: StepRef | None = Field(None, description="when the answer names no step")
    on_failure: StepRef | None = Field(None, description="URL down, slow, or a bad answer")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or len(value) < 10:
            raise ValueError(f"is not an http:// or https:// URL (got {value!r})")
        return value

    def branches(self) -> list[Branch]:
        out = [Branch(f"next={s}", ("next_steps", i), s) for i, s in enumerate(self.next_steps)]
        return out + super().branches()

    def describe(self) -> str:
        return f"webhook {self.url}"

    async def run(self, ctx: CallContext) -> Next:
        payload = ctx.context_for_webhook()
        try:
            answer = await ctx.post_webhook(self.url, payload, self.timeout, self.headers)
            step, said = self.apply(ctx, answer)
        except StepFailed as exc:
            ctx.trace("webhook_failed", {"step": ctx.step, "url": self.url, "error": str(exc)})
            if self.on_failure is None:
                raise
            return Next(self.on_failure, f"webhook failed ({exc}) -> on_failure")
        if step is None:
            return Next(self.then, f"webhook answered without next{said}")
        return Next(step, f"webhook answered next={step}{said}")

    def apply(self, ctx: CallContext, answer: Any) -> tuple[str | None, str]:
        if not isinstance(answer, dict):
            raise StepFailed("the answer is not a JSON object")
        said = []
        variables = answer.get("variables", {})
        if not isinstance(variables, dict):
            raise StepFailed("'variables' in the answer is not an object")
        language = answer.get("language")
        if language is not None and not (isinstance(language, str) and LANG_RE.match(language)):
            raise StepFailed(f"'language' in the answer is not a language code: {language!r}")
        step = answer.get("next")
        if step is not None and (not isinstance(step, str) or step not in ctx.flow.steps):
            raise StepFailed(f"the answer names no step of this flow: next={step!r}")
        if step is not None and self.next_steps and step not in self.next_steps:
            raise StepFailed(f"the answer names a step not in next_steps: next={step!r}")
        for key, value in variables.items():
            ctx.vars[str(key)] = value if isinstance(value, str) else str(value)
            said.append(f"{key}={ctx.vars[str(key)]}")
        if language:
            ctx.language = language
            said.append(f"language={language}")
        return step, (" with " + ", ".join(said)) if said else ""

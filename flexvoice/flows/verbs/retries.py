"""The retry loop `menu` and `gather` share: ask, judge the input, play the invalid or
no-input prompt, ask again; after the last try the caller's attempts explain the failure."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from flexvoice.flows.base import Prompts, Text
from flexvoice.flows.verdict import Verdict

if TYPE_CHECKING:
    from flexvoice.flows.context import CallContext


class RetriedInput(Protocol):
    """The fields of a verb that asks again after a wrong or missing input."""

    @property
    def retries(self) -> int: ...
    @property
    def invalid_prompt(self) -> Prompts | None: ...
    @property
    def invalid_say(self) -> Text | None: ...
    @property
    def no_input_prompt(self) -> Prompts | None: ...
    @property
    def no_input_say(self) -> Text | None: ...


async def ask_with_retries(
    ctx: CallContext,
    verb: RetriedInput,
    ask: Callable[[], Awaitable[Verdict]],
    shown: Callable[[Verdict], str],
) -> tuple[Verdict | None, list[str]]:
    """The first valid verdict (None after the last try) and each failed try, as `shown` says."""
    tries: list[str] = []
    for attempt in range(verb.retries + 1):
        verdict = await ask()
        if verdict.kind == "ok":
            return verdict, tries
        tries.append("no input" if verdict.kind == "no-input" else shown(verdict))
        if attempt < verb.retries:
            if verdict.kind == "invalid":
                await ctx.play(verb.invalid_prompt, verb.invalid_say, optional=True)
            else:
                await ctx.play(verb.no_input_prompt, verb.no_input_say, optional=True)
    return None, tries

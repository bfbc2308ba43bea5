"""`queue`: hold the caller with music, announce their position, offer the call to the
targets (agents) in turn, and leave by `on_overflow` after `max_wait` (Smart Routing's queue
for unanswered calls). Callers are served first come, first served per queue name: only the
head of a queue is offered to agents; the others hear music and their position."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from flexvoice.flows.base import E164, DialTarget, Next, Prompts, StepRef, Verb
from flexvoice.units import Duration

if TYPE_CHECKING:
    from flexvoice.flows.context import CallContext

POSITION_TEXT = {
    "nl": "U bent nummer {position} in de wachtrij.",
    "fr": "Vous êtes numéro {position} dans la file d'attente.",
    "en": "You are number {position} in the queue.",
}


class Queue(Verb):
    verb = "queue"
    waits = True

    name: str | None = Field(None, description="callers of the same name share one queue")
    targets: list[DialTarget] = Field(min_length=1, description="agents, offered in turn")
    ring_timeout: Duration = Field(15.0, description="how long one agent rings")
    music: Prompts = Field("hold_music", description="hold music prompt(s), looped")
    announce_position: bool = True
    announce_every: Duration = Field(30.0, description="how often the position is said")
    max_wait: Duration = Field(300.0, description="then the call leaves by on_overflow")
    retry_interval: Duration = Field(5.0, description="pause after a round nobody took")
    service_level: Duration = Field(
        20.0,
        description="statistics: a caller answered within this wait counts as answered in "
        "service level",
    )
    caller_id: E164 | None = None
    then: StepRef | None = Field(None, description="after an answered call ends")
    on_overflow: StepRef | None = Field(None, description="after max_wait; default: hang up")

    def describe(self) -> str:
        return f"queue for {', '.join(self.targets)} (max {self.max_wait:g}s)"

    async def run(self, ctx: CallContext) -> Next:
        await ctx.ensure_answered()
        name = self.name or f"{ctx.flow.name}/{ctx.step}"
        music = await ctx.prompt_paths(self.music, None)
        entered = ctx.now()
        last_announce: float | None = None
        offers = 0
        # The statistics and the live board read waits from these events; a caller who hangs
        # up while waiting has no queue_leave: the call's end is the end of the wait.
        ctx.trace("queue_enter", {"queue": name, "step": ctx.step, "sl": self.service_level})
        async with ctx.queue_slot(name) as slot:
            while True:
                waited = (ctx.now() - entered).total_seconds()
                if waited >= self.max_wait:
                    ctx.trace("queue_leave", {"queue": name, "result": "overflow"})
                    ctx.reroute("queue overflow")
                    why = f"waited {waited:.0f}s >= max_wait {self.max_wait:g}s -> on_overflow"
                    return Next(self.on_overflow, why, sip_status=480)
                position = await slot.position()
                if self.announce_position and (
                    last_announce is None or waited - last_announce >= self.announce_every
                ):
                    text = POSITION_TEXT.get(ctx.language, POSITION_TEXT["en"])
                    await ctx.play(None, text.format(position=position))
                    last_announce = waited
                # Only the head gets an agent, and only one who is not ringing or talking
                # for another caller of the account (in a cluster: on any node).
                target = await slot.offer(self.targets)
                if target is not None:
                    offers += 1
                    try:
                        result = await ctx.with_music(
                            music,
                            ctx.dial(
                                [target],
                                min(self.ring_timeout, max(self.max_wait - waited, 1.0)),
                                self.caller_id,
                                via=slot,
                            ),
                        )
                        if result.answered is not None:
                            await slot.leave()
                            ctx.trace("queue_leave", {"queue": name, "result": "answered"})
                            who = await ctx.bridge(result)
                            why = f"{target} took the call after {waited:.0f}s; {who} hung up"
                            return Next(self.then, why)
                    finally:
                        await slot.agent_done(target)
                    if result.attempts[-1].outcome == "no-answer":
                        continue  # the ring time was the wait: offer the next agent at once
                await ctx.with_music(music, ctx.sleep(self.retry_interval))

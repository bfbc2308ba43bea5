"""`conference`: put the caller in a named room (PIN asked with 3 tries, moderator, muted,
join/leave beeps, wait music until a moderator is in, room ends when the moderator leaves)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from flexvoice.callcontrol import CallEnded
from flexvoice.conference.room import Member, RoomFull
from flexvoice.conference.service import RoomElsewhere
from flexvoice.flows.base import Next, Prompts, StepFailed, StepRef, Text, Verb

if TYPE_CHECKING:
    from flexvoice.flows.context import CallContext

PIN_SAY = "Please enter the conference PIN, then press the pound key."
WRONG_PIN_SAY = "That PIN is not correct."


class Conference(Verb):
    verb = "conference"
    waits = True

    room: str = Field(
        description="room name; callers in the same account and room talk together "
        "({caller}-style variables allowed)",
        min_length=1,
        max_length=64,
    )
    pin: str | None = Field(None, description="digits the caller must enter (3 tries)")
    pin_prompt: Prompts | None = None
    pin_say: Text | None = Field(None, description=f"default: '{PIN_SAY}'")
    wrong_pin_prompt: Prompts | None = None
    wrong_pin_say: Text | None = None
    pin_tries: int = Field(3, ge=1, le=10)
    moderator: bool = Field(False, description="the room waits for a moderator (see below)")
    muted: bool = Field(False, description="join muted: hears everyone, heard by no one")
    beep: bool = Field(True, description="a beep when someone joins or leaves")
    max_participants: int = Field(50, ge=2, le=250)
    wait_for_moderator: bool = Field(
        False, description="hear wait_music until a moderator has joined"
    )
    wait_music: Prompts | None = Field(None, description="looped while waiting")
    end_when_moderator_leaves: bool = Field(
        False, description="(moderators) the room ends for everyone when this caller leaves"
    )
    status_callback: str | None = Field(
        None, description="URL for conference.started/ended/joined/left webhooks"
    )
    then: StepRef | None = Field(None, description="after the room (kicked, or it ended)")
    on_full: StepRef | None = Field(None, description="the room has max_participants already")
    on_wrong_pin: StepRef | None = Field(None, description="after pin_tries wrong PINs")

    @field_validator("pin")
    @classmethod
    def _pin(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9]{1,12}", value):
            raise ValueError(f"must be 1 to 12 digits, e.g. '4321' (got {value!r})")
        return value

    @field_validator("status_callback")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"is not an http:// or https:// URL (got {value!r})")
        return value

    def prompt_refs(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        yield from super().prompt_refs()
        if isinstance(self.wait_music, str):
            yield ("wait_music",), self.wait_music
        elif isinstance(self.wait_music, list):
            for i, item in enumerate(self.wait_music):
                yield ("wait_music", i), item

    def describe(self) -> str:
        return f"conference room {self.room}" + (" (PIN)" if self.pin else "")

    async def run(self, ctx: CallContext) -> Next:
        service = ctx.deps.conferences
        if service is None:
            raise StepFailed("conferences are not available on this node")
        await ctx.ensure_answered()
        if self.pin is not None and not await self._pin_ok(ctx, self.pin):
            return Next(self.on_wrong_pin, f"wrong PIN {self.pin_tries} times", sip_status=403)
        room = ctx.interpolate(self.room)
        music = await ctx.prompt_paths(self.wait_music, None)
        member = Member(
            ctx.call_id,
            moderator=self.moderator,
            muted=self.muted,
            wait_for_moderator=self.wait_for_moderator,
            end_on_leave=self.end_when_moderator_leaves,
        )
        try:
            how = await service.join(
                ctx.leg,
                ctx.account or "",
                room,
                member,
                max_participants=self.max_participants,
                beep=self.beep,
                wait_music=music,
                callback=self.status_callback,
            )
        except RoomFull as exc:
            if self.on_full is None:
                raise StepFailed(str(exc)) from None
            return Next(self.on_full, str(exc))
        except RoomElsewhere as exc:
            raise StepFailed(str(exc)) from None
        if how == "hangup":  # the caller, or the worker holding the call was lost
            raise CallEnded(ctx.leg.ended_by or "caller")
        return Next(self.then, f"left room {room}: {how}")

    async def _pin_ok(self, ctx: CallContext, pin: str) -> bool:
        ask = await ctx.prompt_paths(self.pin_prompt, self.pin_say or PIN_SAY)
        for attempt in range(self.pin_tries):
            got = await ctx.leg.collect_digits(
                max_digits=12, timeout=8.0, inter_digit_timeout=4.0, terminators="#", prompts=ask
            )
            if got.digits.rstrip("#") == pin:
                ctx.trace("pin", {"ok": True, "attempt": attempt + 1})
                return True
            ctx.trace("pin", {"ok": False, "attempt": attempt + 1})
            if attempt + 1 < self.pin_tries:
                await ctx.play(self.wrong_pin_prompt, self.wrong_pin_say or WRONG_PIN_SAY)
        return False

"""Conference rooms on call legs: a participant joins (waiting with music until the room is
alive), is mixed into the room on its media worker, and leaves when it hangs up, is kicked or
the room ends. One `conference` usage event per set-up; webhooks `conference.started`,
`conference.ended`, `conference.joined`, `conference.left` (signed like status callbacks).

A room is mixed in the conference bridge of each media worker that holds a participant
(`CallLeg.media_worker`): its "parts". Parts are joined by links (internal calls, a `Linker`)
into a tree: a new part hangs below the shallowest part with a free slot, so the tree stays
shallow and never has a cycle; as a bridge port never hears itself, nobody hears themselves
through the links (mix-minus without echo cancelling). Links are hidden members: not counted,
not billed, never muted. A part left without participants or children is cut off. Without a
linker (or with no free slot for a link) a leg on another worker is refused (`RoomElsewhere`).

Which part hangs where, and how the tree is rebuilt when a worker holding a part dies, is
decided by flexvoice.conference.tree (no I/O); here each link is watched, and a link that ends
without our asking feeds the tree the workers lost since their part was made. Participants of
a part that cannot be linked back leave the room ("cut off from the room").
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from flexvoice.callcontrol import CallEnded, CallLeg
from flexvoice.clock import utc_now
from flexvoice.conference.live import Linker, LiveRoom, Seat, Uplink, UsageSink, WebhookSender
from flexvoice.conference.room import Action, Member, Room, RoomFull
from flexvoice.conference.tree import (
    Link,
    Move,
    NoSlot,
    Retry,
    Rooted,
    Stranded,
    Tree,
    TreeAction,
    Unlink,
)
from flexvoice.logs import get_logger

log = get_logger(__name__)

__all__ = ["ConferenceService", "RoomElsewhere", "RoomFull"]


class RoomElsewhere(Exception):
    """The room is mixed on another media worker than the one holding this leg."""


class ConferenceService:
    def __init__(
        self,
        *,
        usage_sink: UsageSink | None = None,
        webhooks: WebhookSender | None = None,
        beep: Callable[[], Path] | None = None,
        clock: Callable[[], datetime] = utc_now,
        linker: Linker | None = None,
    ):
        self.linker = linker
        self.usage_sink = usage_sink
        self.webhooks = webhooks
        self.beep = beep
        self.clock = clock
        self.rooms: dict[tuple[str, str], LiveRoom] = {}  # (account, room name) -> live room

    # -- reads --------------------------------------------------------------------------------
    def rooms_of(self, account: str) -> list[Room]:
        return [_measured(live) for (acc, _), live in self.rooms.items() if acc == account]

    def get(self, account: str, name: str) -> Room | None:
        live = self.rooms.get((account, name))
        return _measured(live) if live is not None else None

    def placement_of(self, account: str, name: str) -> str | None:
        live = self.rooms.get((account, name))
        return live.placement if live is not None else None

    # -- a participant's stay -----------------------------------------------------------------
    async def join(
        self,
        leg: CallLeg,
        account: str,
        name: str,
        member: Member,
        *,
        max_participants: int = 50,
        beep: bool = True,
        wait_music: Sequence[Path] = (),
        callback: str | None = None,
    ) -> str:
        """Stay in the room until the leg hangs up, is kicked or the room ends; returns
        which. Raises RoomFull or RoomElsewhere before anything happens to the leg."""
        key = (account, name)
        live = self.rooms.get(key)
        if live is None:
            room = Room(account, name, max_participants=max_participants)
            live = LiveRoom(room, Tree(leg.media_worker), callback)
            live.born[leg.media_worker] = self._incarnation(leg.media_worker)
            self.rooms[key] = live
        if leg.media_worker not in live.parts:
            await self._extend(live, leg.media_worker)
        live.callback = live.callback or callback
        seat = Seat(leg, member)
        try:
            actions = live.room.join(member, self.clock())
        except RoomFull:
            if not live.room.members:
                self.rooms.pop(key, None)
            raise
        live.seats[member.call_id] = seat
        self._apply(live, actions)
        try:
            if not seat.admitted.is_set():
                await self._wait_with_music(seat, wait_music)
            if seat.kicked.is_set():
                return seat.why
            await leg.conf_join(live.room.id, member.muted)
            if beep:
                self._beep(live, exclude=None)
            return await self._stay(seat)
        except CallEnded:
            return "hangup"
        finally:
            with contextlib.suppress(CallEnded, ConnectionError):
                await leg.conf_leave()
            self._leave(live, member.call_id, beep)

    async def _wait_with_music(self, seat: Seat, music: Sequence[Path]) -> None:
        player = asyncio.ensure_future(seat.leg.play(music, loop=True)) if music else None
        waits = [
            asyncio.ensure_future(seat.admitted.wait()),
            asyncio.ensure_future(seat.kicked.wait()),
        ]
        try:
            while not (seat.admitted.is_set() or seat.kicked.is_set()):
                ended = asyncio.ensure_future(_until_ended(seat.leg))
                done, _ = await asyncio.wait([*waits, ended], return_when=asyncio.FIRST_COMPLETED)
                ended.cancel()
                if ended in done and ended.exception() is None:
                    raise CallEnded("remote_hangup")
        finally:
            for w in waits:
                w.cancel()
            if player is not None:
                with contextlib.suppress(CallEnded):
                    await seat.leg.stop_play()
                player.cancel()
                with contextlib.suppress(asyncio.CancelledError, CallEnded, Exception):
                    await player

    async def _stay(self, seat: Seat) -> str:
        kicked = asyncio.ensure_future(seat.kicked.wait())
        ended = asyncio.ensure_future(_until_ended(seat.leg))
        try:
            await asyncio.wait([kicked, ended], return_when=asyncio.FIRST_COMPLETED)
        finally:
            kicked.cancel()
            ended.cancel()
        return seat.why if seat.kicked.is_set() else "hangup"

    def _leave(self, live: LiveRoom, call_id: str, beep: bool) -> None:
        live.seats.pop(call_id, None)
        actions = live.room.leave(call_id, self.clock())
        self._apply(live, actions)
        if beep and live.seats and not live.room.ended:
            self._beep(live, exclude=call_id)
        self._prune(live)

    # -- the tree of parts (decided by flexvoice.conference.tree) ------------------------------
    def _incarnation(self, placement: str) -> float | None:
        return self.linker.incarnation(placement) if self.linker is not None else None

    def _stopping(self) -> bool:
        return self.linker is not None and self.linker.stopping()

    def _free(self, live: LiveRoom) -> dict[str, int]:
        linker = self.linker
        return {p: linker.free_slots(p) for p in live.parts} if linker is not None else {}

    async def _extend(self, live: LiveRoom, child: str) -> None:
        """Hang a part for `child` below the shallowest part with a free slot."""
        name = live.room.name
        async with live.lock:
            if child in live.parts:
                return
            if self.linker is None:
                raise RoomElsewhere(f"room {name} is on {live.placement}, this call on {child}")
            if self.linker.free_slots(child) < 1:
                raise RoomElsewhere(f"room {name}: {child} has no free slot for a link")
            try:
                for action in live.tree.place(child, self._free(live), self.linker.relays()):
                    if isinstance(action, Move):
                        await self._move(live, action)
                    else:
                        await self._hang(live, action.parent, action.child)
            except NoSlot as exc:
                raise RoomElsewhere(f"room {name}: {exc}") from None
            except Exception as exc:
                raise RoomElsewhere(f"room {name}: {exc}") from None

    async def _hang(self, live: LiveRoom, parent: str, child: str) -> None:
        """Link `child` below `parent`, both ends mixed into the room, and watch the link."""
        assert self.linker is not None
        born = self._incarnation(child)
        link = await self.linker.link(parent, child)
        live.tree.linked(child, parent)
        live.links[child] = link
        live.born[child] = born
        for end in link:
            with contextlib.suppress(CallEnded):
                await end.conf_join(live.room.id, False)
        live.spawn(self._watch(live, child, link))
        log.info("conference.part_added", room=live.room.name, part=child, parent=parent)

    async def _move(self, live: LiveRoom, move: Move) -> None:
        """A relay takes a leaf's place and the leaf hangs below it (under the room's lock).
        If the relay cannot be linked, the leaf hangs back where it was; if that fails too, it
        is an orphan for the tree's retries (flexvoice.conference.tree.link_failed)."""
        parent = live.tree.parts[move.part].parent
        assert parent is not None  # a leaf below a relay
        cut_at = time.monotonic()
        live.tree.detach(move.part)
        await self._cut(live, move.part)
        try:
            await self._hang(live, parent, move.relay)
            await self._hang(live, move.relay, move.part)
            gap_ms = round((time.monotonic() - cut_at) * 1000)
            log.info("conference.part_moved", room=live.room.name, part=move.part,
                     relay=move.relay, gap_ms=gap_ms)  # fmt: skip
        except Exception:
            if move.relay in live.links:
                await self._cut(live, move.relay)
                live.tree.parts.pop(move.relay, None)
            try:
                await self._hang(live, parent, move.part)
            except Exception as exc:
                log.warning("conference.relink_failed", room=live.room.name, part=move.part,
                            error=str(exc))  # fmt: skip
                await self._carry_out(live, live.tree.link_failed(move.part, self._free(live)))
            raise

    async def _cut(self, live: LiveRoom, child: str) -> None:
        """Hang up the child's uplink and wait for it: the slot it held on the parent's worker
        is free afterwards (a Move links that slot again at once)."""
        for end in live.links.pop(child, None) or ():
            with contextlib.suppress(CallEnded, ConnectionError):
                await end.hangup()

    async def _watch(self, live: LiveRoom, child: str, link: Uplink) -> None:
        ends = [asyncio.ensure_future(_until_ended(end)) for end in link]
        try:
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for end in ends:
                end.cancel()
        async with live.lock:
            # Checked under the lock: a link we cut (_unlink forgets it first), or one a
            # rebuild already replaced, is no news.
            if live.links.get(child) is not link or live.room.ended or self._stopping():
                return
            lost = {p for p in live.parts if self._incarnation(p) != live.born.get(p)}
            log.warning(
                "conference.link_broken", room=live.room.name, part=child, lost=sorted(lost)
            )
            actions = live.tree.link_ended(child, lost, live.used(), self._free(live))
            await self._carry_out(live, actions)
        self._prune(live)

    async def _retry(self, live: LiveRoom, child: str, after: float) -> None:
        await asyncio.sleep(after)
        async with live.lock:
            if live.room.ended:
                return
            actions = live.tree.retry(child, live.used(), self._free(live))
            await self._carry_out(live, actions)
        self._prune(live)

    async def _carry_out(self, live: LiveRoom, actions: list[TreeAction]) -> None:
        """The tree's actions, in order (under the room's lock)."""
        todo = list(actions)
        while todo:
            action = todo.pop(0)
            if isinstance(action, Link):
                try:
                    await self._hang(live, action.parent, action.child)
                except Exception as exc:
                    log.warning("conference.relink_failed", room=live.room.name,
                                part=action.child, error=str(exc))  # fmt: skip
                    todo += live.tree.link_failed(action.child, self._free(live))
            elif isinstance(action, Retry):
                live.spawn(self._retry(live, action.child, action.after))
            elif isinstance(action, Rooted):
                log.warning("conference.new_root", room=live.room.name, root=action.placement)
            elif isinstance(action, Stranded):
                log.error("conference.part_cut_off", room=live.room.name,
                          parts=sorted(action.placements))  # fmt: skip
                for seat in live.seats.values():
                    if seat.leg.media_worker in action.placements:
                        seat.why = "cut off from the room"
                        seat.kicked.set()
            else:
                self._unlink(live, action.child)

    def _unlink(self, live: LiveRoom, child: str) -> None:
        link = live.links.pop(child, None)
        for end in link or ():  # the end on a dead worker is gone: BYE to the other, not waited
            asyncio.ensure_future(end.hangup()).add_done_callback(_quiet)

    def _prune(self, live: LiveRoom) -> None:
        """Cut off parts with no participant and no child (all of them once the room ended)."""
        for action in live.tree.prune(live.used(), live.room.ended):
            if isinstance(action, Unlink):
                self._unlink(live, action.child)
        if live.room.ended:
            for child in list(live.links):
                self._unlink(live, child)

    # -- moderation ---------------------------------------------------------------------------
    async def mute(self, account: str, name: str, call_id: str, muted: bool) -> Member:
        live = self._seat_room(account, name, call_id)
        member = live.room.mute(call_id, muted)
        if member.joined_at is not None:
            await live.seats[call_id].leg.conf_mute(muted)
        return member

    def kick(self, account: str, name: str, call_id: str) -> None:
        live = self._seat_room(account, name, call_id)
        live.seats[call_id].kicked.set()

    def _seat_room(self, account: str, name: str, call_id: str) -> LiveRoom:
        live = self.rooms.get((account, name))
        if live is None:
            raise KeyError(f"no room '{name}' in progress")
        if call_id not in live.seats:
            raise KeyError(f"call {call_id} is not in room '{name}'")
        return live

    # -- effects ------------------------------------------------------------------------------
    def _apply(self, live: LiveRoom, actions: list[Action]) -> None:
        room = live.room
        for action in actions:
            seat = live.seats.get(action.call_id or "")
            if action.kind == "admit" and seat is not None:
                seat.admitted.set()
            elif action.kind == "kick" and seat is not None:
                seat.kicked.set()
            elif action.kind == "started":
                self._usage(room)
                self._notify(live, "conference.started", None)
            elif action.kind in ("joined", "left"):
                self._notify(live, f"conference.{action.kind}", action.call_id)
            elif action.kind == "ended":
                self._notify(live, "conference.ended", None)
                if self.rooms.get((room.account, room.name)) is live:
                    del self.rooms[(room.account, room.name)]
                log.info("conference.ended", room=room.name, id=room.id)

    def _usage(self, room: Room) -> None:
        if self.usage_sink is None or room.started_at is None:
            return
        try:
            self.usage_sink.record(
                {
                    "id": f"{room.id}:conference",
                    "account": room.account,
                    "kind": "conference",
                    "room": room.name,
                    "started_at": room.started_at.isoformat(timespec="milliseconds"),
                }
            )
        except Exception:
            log.exception("conference.usage_failed", room=room.name)

    def _notify(self, live: LiveRoom, event: str, call_id: str | None) -> None:
        log.info(event, room=live.room.name, call_id=call_id)
        if self.webhooks is None or not live.callback:
            return
        payload: dict[str, Any] = {"event": event, "conference": live.room.resource()}
        if call_id is not None:
            payload["call_id"] = call_id
        try:
            self.webhooks.enqueue(live.room.account, live.callback, event, payload)
        except Exception:
            log.exception("conference.webhook_failed", room=live.room.name)

    def _beep(self, live: LiveRoom, exclude: str | None) -> None:
        if self.beep is None:
            return
        path = self.beep()
        for call_id, seat in list(live.seats.items()):
            if call_id == exclude or seat.member.joined_at is None:
                continue
            task = asyncio.ensure_future(seat.leg.play([path]))
            task.add_done_callback(_quiet)


def _measured(live: LiveRoom) -> Room:
    """The room with each participant's talking time as its media worker measures it now."""
    for seat in live.seats.values():
        seat.member.talking_seconds, seat.member.talking = seat.leg.talk_time()
    return live.room


def _quiet(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # a beep to a leg that just left: nothing to report


async def _until_ended(leg: CallLeg) -> None:
    with contextlib.suppress(CallEnded):
        await leg.wait_ended()

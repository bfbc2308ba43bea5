"""A room's live state on this node (its seats, its tree of parts and their links) and the
ports the conference service needs: internal calls between workers (`Linker`), usage and
webhooks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from flexvoice.callcontrol import CallLeg
from flexvoice.conference.room import Member, Room
from flexvoice.conference.tree import Part, Tree


class UsageSink(Protocol):
    def record(self, event: dict[str, Any]) -> None: ...


class WebhookSender(Protocol):
    def enqueue(self, account: str, url: str, event: str, payload: dict[str, Any]) -> None: ...


@dataclass
class Seat:
    """A participant's live state: its leg and what ends its stay."""

    leg: CallLeg
    member: Member
    admitted: asyncio.Event = field(default_factory=asyncio.Event)
    kicked: asyncio.Event = field(default_factory=asyncio.Event)
    why: str = "kicked"  # what `kicked` means: a moderator's kick, or cut off from the room


class Linker(Protocol):
    """Internal calls between media workers (flexvoice.sip.links.PoolLinker)."""

    def free_slots(self, placement: str) -> int: ...

    def relays(self) -> dict[str, int]:
        """Workers that take no calls, only links (placement -> free slots)."""

    def incarnation(self, placement: str) -> float | None:
        """Which start of the worker runs now (None: it is down). A part made on an earlier
        one is gone, even when the worker is back."""

    async def link(self, parent: str, child: str) -> tuple[CallLeg, CallLeg]: ...

    def stopping(self) -> bool:
        """The workers are being stopped: links ending now are no news."""


Uplink = tuple[CallLeg, CallLeg]  # (the parent's end, the child's end)


@dataclass
class LiveRoom:
    room: Room
    tree: Tree
    callback: str | None = None
    seats: dict[str, Seat] = field(default_factory=dict)
    links: dict[str, Uplink] = field(default_factory=dict)  # child placement -> its uplink
    born: dict[str, float | None] = field(default_factory=dict)  # placement -> incarnation
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    tasks: set[asyncio.Future[None]] = field(default_factory=set)

    @property
    def placement(self) -> str:
        """The root part's worker."""
        return self.tree.root

    @property
    def parts(self) -> dict[str, Part]:
        return self.tree.parts

    def used(self) -> dict[str, int]:
        held: dict[str, int] = {}
        for seat in self.seats.values():
            held[seat.leg.media_worker] = held.get(seat.leg.media_worker, 0) + 1
        return held

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

"""One conference room as a state machine: joins, leaves, mutes and kicks go in (with the
time), actions come out; no I/O, so every rule is tested without SIP.

Rules (after Asterisk ConfBridge and FreeSWITCH mod_conference):
- A room is alive ("started") from the first participant who does not wait for a moderator;
  participants with `wait_for_moderator` wait (they hear music) until a moderator is in.
- It holds at most `max_participants` (waiting ones count; hidden link members do not).
- A moderator with `end_on_leave` ends the room for everyone when they leave.
- The room ends when its last participant leaves. Each start is one set-up (one usage event).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

ActionKind = Literal["started", "admit", "wait", "joined", "left", "kick", "ended"]


class RoomFull(Exception):
    pass


@dataclass
class Member:
    call_id: str
    moderator: bool = False
    muted: bool = False
    wait_for_moderator: bool = False
    end_on_leave: bool = False  # a moderator whose leaving ends the room
    joined_at: datetime | None = None  # set when mixed into the room (not while waiting)
    waiting_since: datetime | None = None
    talking_seconds: float = 0.0  # spoken in the room, measured by its media worker
    talking: bool = False

    def resource(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "moderator": self.moderator,
            "muted": self.muted,
            "status": "in-room" if self.joined_at is not None else "waiting",
            "talking": self.talking,
            "talking_seconds": round(self.talking_seconds, 1),
            "joined_at": self.joined_at.isoformat(timespec="milliseconds")
            if self.joined_at
            else None,
        }


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    call_id: str | None = None


@dataclass
class Room:
    account: str
    name: str
    max_participants: int = 50
    id: str = field(default_factory=lambda: "CF" + uuid.uuid4().hex)
    members: dict[str, Member] = field(default_factory=dict)
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    @property
    def has_moderator(self) -> bool:
        return any(m.moderator and m.joined_at for m in self.members.values())

    def join(self, member: Member, now: datetime) -> list[Action]:
        if self.ended:
            raise RoomFull(f"room {self.name} has ended")
        if member.call_id in self.members:
            return []
        if len(self.members) >= self.max_participants:
            raise RoomFull(
                f"room {self.name} is full ({self.max_participants} participants at most)"
            )
        self.members[member.call_id] = member
        waits = member.wait_for_moderator and not member.moderator and not self.has_moderator
        if waits:
            member.waiting_since = now
            return [Action("wait", member.call_id)]
        actions = self._admit(member, now)
        if member.moderator:
            for other in self.members.values():
                if other.joined_at is None and other is not member:
                    actions += self._admit(other, now)
        return actions

    def _admit(self, member: Member, now: datetime) -> list[Action]:
        actions = []
        if self.started_at is None:
            self.started_at = now
            actions.append(Action("started"))
        member.joined_at = now
        member.waiting_since = None
        actions += [Action("admit", member.call_id), Action("joined", member.call_id)]
        return actions

    def leave(self, call_id: str, now: datetime) -> list[Action]:
        member = self.members.pop(call_id, None)
        if member is None:
            return []
        actions = [Action("left", call_id)]
        if member.moderator and member.end_on_leave and member.joined_at is not None:
            actions += [Action("kick", other) for other in self.members]
        if not self.ended and (not self.members or (member.moderator and member.end_on_leave)):
            self.ended_at = now
            actions.append(Action("ended"))
        return actions

    def mute(self, call_id: str, muted: bool) -> Member:
        member = self.members[call_id]
        member.muted = muted
        return member

    def resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "room": self.name,
            "status": "ended" if self.ended else ("in-progress" if self.started_at else "waiting"),
            "started_at": self.started_at.isoformat(timespec="milliseconds")
            if self.started_at
            else None,
            "max_participants": self.max_participants,
            "participants": [m.resource() for m in self.members.values()],
        }

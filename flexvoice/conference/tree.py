"""A room's tree of parts as a state machine without I/O: where a new part hangs, which parts
are cut off when they empty, and how the tree is rebuilt when a worker holding a part dies.
Events go in (with what the adapter knows of the workers: which are lost, free slots, how
many participants each holds), actions come out; flexvoice.conference.service carries them
out with links (internal SIP calls) and tells the result back.

A part is the room on one media worker; its uplink is the link to its parent. The tree never
has a cycle, so nobody hears themselves through the links (a bridge port never hears itself).

Rebuild, when a link ends without our asking (a worker died, or its far end was cut):
- parts on lost workers go (their participants' calls end with the worker);
- every other part that lost its parent (or whose uplink broke) is an orphan, with its own
  subtree intact below it; if the root was lost, the orphan holding the most participants in
  its subtree becomes the root;
- each orphan holding participants hangs again below the shallowest connected part with a
  free slot; one holding nobody is cut off; a link refused (the old link's slot on the
  orphan's worker is freed a second or two after its end) is tried again after RETRY_AFTER,
  up to RETRIES times, then the orphan is stranded: its participants are told to leave.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

RETRIES = 10
RETRY_AFTER = 1.0  # seconds


class NoSlot(Exception):
    pass


@dataclass
class Part:
    placement: str
    parent: str | None = None  # None: the root, or an orphan waiting for a link
    depth: int = 0
    tries: int = 0  # links refused since it became an orphan
    relinking: bool = False  # a Link action for it is out


@dataclass(frozen=True)
class Link:
    """Make a link parent -> child, then tell `linked` or `link_failed`."""

    parent: str
    child: str


@dataclass(frozen=True)
class Move:
    """Put `relay` where `part` hangs and `part` below it: hang up the part's uplink, link its
    parent -> relay, then relay -> part; tell `linked` for each link. (A leaf's participants
    hear the room again once the second link is up: on loopback a few tens of ms.)"""

    part: str
    relay: str


@dataclass(frozen=True)
class Unlink:
    """Hang up the child's uplink (both ends; the one on a dead worker is gone already)."""

    child: str


@dataclass(frozen=True)
class Retry:
    """Call `retry(child, ...)` after `after` seconds."""

    child: str
    after: float


@dataclass(frozen=True)
class Stranded:
    """These parts could not be linked back: their participants leave the room."""

    placements: frozenset[str]


@dataclass(frozen=True)
class Rooted:
    """The root's worker was lost: the room's root is now here."""

    placement: str


TreeAction = Link | Unlink | Retry | Stranded | Rooted


def _shallowest(parts: list[Part]) -> Part:
    return min(parts, key=lambda p: (p.depth, p.placement))


class Tree:
    def __init__(self, root: str):
        self.root = root
        self.parts: dict[str, Part] = {root: Part(root)}

    # -- reads ---------------------------------------------------------------------------------
    def depth(self) -> int:
        return max((p.depth for p in self.parts.values()), default=0)

    def children(self, placement: str) -> list[str]:
        return [p.placement for p in self.parts.values() if p.parent == placement]

    def subtree(self, top: str) -> set[str]:
        below, todo = {top}, [top]
        while todo:
            for child in self.children(todo.pop()):
                if child not in below:
                    below.add(child)
                    todo.append(child)
        return below

    def hops(self, a: str, b: str) -> int:
        """Links between two parts of the room (through their nearest common part)."""
        up: dict[str, int] = {}
        at: str | None = a
        while at is not None:
            up[at] = len(up)
            at = self.parts[at].parent
        n, at = 0, b
        while at not in up:
            at = self.parts[at].parent
            if at is None:
                raise ValueError(f"{a} and {b} are not in one tree")
            n += 1
        return n + up[at]

    def connected(self) -> set[str]:
        return self.subtree(self.root) if self.root in self.parts else set()

    # -- growing -------------------------------------------------------------------------------
    def place(
        self, child: str, free: Mapping[str, int], relays: Mapping[str, int] = {}
    ) -> list[Link | Move]:
        """Where a new part on `child` hangs. `relays`: workers that take no calls, only links
        (placement -> free slots), those in the room and those spare.

        Without relays: below the shallowest connected part with a free slot (ties: by name,
        so placement is predictable). Two participants per worker leave each part one slot for
        a child, so the tree is then a chain (50 participants: 12 deep).

        With relays the room's parts are leaves and its relays the inside of the tree, filled
        breadth first, so the farthest two participants are as few hops apart as the relays
        allow (and a relay's hop is the cheaper one: its bridge ticks every 10 ms and PJSIP's
        media thread takes its packets): the first relay hangs below the root and is the hub;
        a new part hangs below the shallowest relay with a free slot; when every relay is
        full, a spare relay takes the place of the shallowest leaf, which moves below it
        beside the new part (each relay so adds two leaves: 12 relays hold 25 parts three
        relays deep, any two participants at most 6 hops apart). Only when no relay is spare
        does a part hang below a part."""
        if child in self.parts:
            raise ValueError(f"{child} already holds a part of the room")
        connected = self._connected_parts()
        hubs = [p for p in connected if p.placement in relays and free.get(p.placement, 0) > 0]
        if hubs:
            return [Link(_shallowest(hubs).placement, child)]
        spare = {r: n for r, n in relays.items() if r not in self.parts and r != child and n >= 2}
        inside = [p for p in connected if p.placement in relays]
        parents = [p for p in connected if free.get(p.placement, 0) > 0]
        if spare and not inside and parents:
            relay = max(spare, key=lambda r: (spare[r], r))
            return [Link(_shallowest(parents).placement, relay), Link(relay, child)]
        roomy = [r for r, n in spare.items() if n >= 3]  # an uplink, the moved leaf, the new
        leaves = [
            p for p in connected
            if p.parent in relays and p.placement not in relays and not self.children(p.placement)
        ]  # fmt: skip
        if roomy and leaves:
            relay = max(roomy, key=lambda r: (spare[r], r))
            return [Move(_shallowest(leaves).placement, relay), Link(relay, child)]
        if not parents:
            raise NoSlot("no worker of the room has a free slot for a link")
        return [Link(_shallowest(parents).placement, child)]

    def detach(self, placement: str) -> None:
        """A Move starts: the part's uplink is being hung up; until it is linked again it is
        neither cut off nor re-hung by a rebuild."""
        part = self.parts[placement]
        part.parent, part.relinking = None, True
        self._depths()

    def linked(self, child: str, parent: str) -> None:
        """A link parent -> child is up (a new part, or an orphan hung back)."""
        part = self.parts.setdefault(child, Part(child))
        part.parent, part.tries, part.relinking = parent, 0, False
        self._depths()

    def prune(self, used: Mapping[str, int], ended: bool) -> list[TreeAction]:
        """Cut off parts with no participant and no child (every part once the room ended);
        the root stays while the room lives."""
        actions: list[TreeAction] = []
        while True:
            parents = {p.parent for p in self.parts.values()}
            idle = [
                p.placement for p in self.parts.values()
                if p.placement != self.root and p.placement not in parents
                and (ended or not used.get(p.placement)) and not p.relinking
            ]  # fmt: skip
            if not idle:
                return actions
            for placement in idle:
                part = self.parts.pop(placement)
                if part.parent is not None:
                    actions.append(Unlink(placement))

    # -- rebuilding ----------------------------------------------------------------------------
    def link_ended(
        self,
        child: str,
        lost: set[str],
        used: Mapping[str, int],
        free: Mapping[str, int],
    ) -> list[TreeAction]:
        """`child`'s uplink ended without our asking; `lost`: workers that died (or were
        restarted) since their part was made."""
        actions: list[TreeAction] = []
        if child not in self.parts and not lost & set(self.parts):
            return actions  # not (or no longer) a part of the room: no news
        for placement in sorted(lost & set(self.parts)):
            part = self.parts.pop(placement)
            if part.parent is not None:
                actions.append(Unlink(placement))
        broken = self.parts.get(child)
        if broken is not None and broken.parent is not None:
            broken.parent = None
            actions.append(Unlink(child))
        for part in self.parts.values():
            if part.parent is not None and part.parent not in self.parts:
                part.parent = None
                actions.append(Unlink(part.placement))
        if self.root not in self.parts:
            tops = [p.placement for p in self.parts.values() if p.parent is None]
            if not tops:
                return actions  # nothing left on a live worker
            self.root = max(tops, key=lambda t: (self._held(t, used), t))
            actions.append(Rooted(self.root))
        self._depths()
        slots = dict(free)
        orphans = [
            p for p in self.parts.values()
            if p.parent is None and p.placement != self.root and not p.relinking
        ]  # fmt: skip
        for orphan in sorted(orphans, key=lambda p: (-self._held(p.placement, used), p.placement)):
            orphan.tries = 0
            if not self._held(orphan.placement, used):
                actions += self._drop(orphan.placement)
            else:
                actions += self._hang(orphan, slots)
        return actions

    def link_failed(self, child: str, free: Mapping[str, int]) -> list[TreeAction]:
        """A Link for an orphan was refused or timed out."""
        part = self.parts.get(child)
        if part is None or part.parent is not None:
            return []
        part.relinking = False
        part.tries += 1
        if part.tries >= RETRIES:
            return self._strand(child)
        return [Retry(child, RETRY_AFTER)]

    def retry(
        self, child: str, used: Mapping[str, int], free: Mapping[str, int]
    ) -> list[TreeAction]:
        part = self.parts.get(child)
        if part is None or part.parent is not None or part.relinking:
            return []
        if not self._held(child, used):
            return self._drop(child)
        return self._hang(part, dict(free))

    # -- inside --------------------------------------------------------------------------------
    def _connected_parts(self) -> list[Part]:
        return [self.parts[p] for p in self.connected()]

    def _held(self, top: str, used: Mapping[str, int]) -> int:
        return sum(used.get(p, 0) for p in self.subtree(top))

    def _hang(self, orphan: Part, free: dict[str, int]) -> list[TreeAction]:
        below = self.subtree(orphan.placement)
        parents = [
            p for p in self._connected_parts()
            if p.placement not in below and free.get(p.placement, 0) > 0
        ]  # fmt: skip
        if not parents:
            orphan.tries += 1
            if orphan.tries >= RETRIES:
                return self._strand(orphan.placement)
            return [Retry(orphan.placement, RETRY_AFTER)]
        parent = min(parents, key=lambda p: (p.depth, p.placement))
        free[parent.placement] -= 1  # the next orphan of this rebuild sees the slot taken
        orphan.relinking = True
        return [Link(parent.placement, orphan.placement)]

    def _drop(self, top: str) -> list[TreeAction]:
        actions: list[TreeAction] = []
        for placement in sorted(self.subtree(top)):
            part = self.parts.pop(placement)
            if part.parent is not None:
                actions.append(Unlink(placement))
        return actions

    def _strand(self, top: str) -> list[TreeAction]:
        below = frozenset(self.subtree(top))
        return [*self._drop(top), Stranded(below)]

    def _depths(self) -> None:
        for part in self.parts.values():
            depth, at, seen = 0, part, {part.placement}
            while at.parent is not None and at.parent in self.parts and at.parent not in seen:
                at = self.parts[at.parent]
                seen.add(at.placement)
                depth += 1
            part.depth = depth

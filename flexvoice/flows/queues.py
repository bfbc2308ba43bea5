"""Callers waiting in a flow's named queues: their order, and which agent is offered to whom.

The rules are `Line`'s, without I/O: first come, first served; only the head of a line is
offered to an agent; agents are offered in turn (round robin) from where the last offer
stopped, skipping an agent who is already ringing or talking for another caller of the
account (in any of its queues), so one agent never rings twice at once. `QueueBoard` keeps one
node's lines in memory; in a cluster flexvoice.cluster.queues keeps them in Redis for every
node, with the same rules in a Lua script (tests/test_queue_line.py holds both to them)."""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from flexvoice.callcontrol import CallLeg, DialResult


def pick_agent(targets: Sequence[str], turn: int, busy: Collection[str]) -> int | None:
    """The index of the agent to offer: the first one from `turn` on (round robin) who is
    not busy; None when every one is."""
    for i in range(len(targets)):
        k = (turn + i) % len(targets)
        if targets[k] not in busy:
            return k
    return None


@dataclass
class Line:
    """One queue's waiting callers, by arrival, and where the agents' turn stands."""

    waiting: list[tuple[float, int, str]] = field(default_factory=list)  # (arrived, n, id)
    turn: int = 0
    _entered: int = 0

    def enter(self, call_id: str, arrived: float) -> None:
        self._entered += 1
        bisect.insort(self.waiting, (arrived, self._entered, call_id))

    def position(self, call_id: str) -> int:
        """1 for the head; 0 once the caller left."""
        for n, (_, _, waiting) in enumerate(self.waiting, 1):
            if waiting == call_id:
                return n
        return 0

    def leave(self, call_id: str) -> None:
        self.waiting = [w for w in self.waiting if w[2] != call_id]

    def claim(self, call_id: str, targets: Sequence[str], busy: Collection[str]) -> str | None:
        """The agent to offer `call_id` now: only to the head, only a free agent."""
        if not self.waiting or self.waiting[0][2] != call_id:
            return None
        k = pick_agent(targets, self.turn, busy)
        if k is None:
            return None
        self.turn = k + 1
        return targets[k]


class QueueSlot(Protocol):
    """A caller's place in a line, for the `queue` step."""

    async def position(self) -> int: ...

    async def offer(self, targets: Sequence[str]) -> str | None:
        """The agent to ring for this caller now (kept busy until `agent_done`), or None:
        not this caller's turn, or every agent busy."""

    async def agent_done(self, target: str) -> None: ...

    async def dial(
        self, leg: CallLeg, target: str, ring_timeout: float, caller_id: str | None
    ) -> DialResult | None:
        """The agent dialled by another node and bridged to `leg` (a cluster's choice), or
        None: this node dials it."""

    async def leave(self) -> None: ...


class QueueBoards(Protocol):
    def slot(
        self, account: str, name: str, call_id: str, arrived: float
    ) -> contextlib.AbstractAsyncContextManager[QueueSlot]: ...


class QueueBoard:
    """One node's lines, in memory (no cluster)."""

    def __init__(self) -> None:
        self.lines: dict[tuple[str, str], Line] = {}
        self.busy: dict[str, set[str]] = {}  # account -> agents ringing or talking

    @contextlib.asynccontextmanager
    async def slot(
        self, account: str, name: str, call_id: str, arrived: float
    ) -> AsyncIterator[QueueSlot]:
        line = self.lines.setdefault((account, name), Line())
        line.enter(call_id, arrived)
        slot = MemorySlot(self, account, line, call_id)
        try:
            yield slot
        finally:
            await slot.leave()
            for target in list(slot.held):
                await slot.agent_done(target)
            if not line.waiting:
                self.lines.pop((account, name), None)


class MemorySlot:
    def __init__(self, board: QueueBoard, account: str, line: Line, call_id: str):
        self.board, self.account, self.line, self.call_id = board, account, line, call_id
        self.held: set[str] = set()

    async def position(self) -> int:
        return self.line.position(self.call_id)

    async def offer(self, targets: Sequence[str]) -> str | None:
        busy = self.board.busy.setdefault(self.account, set())
        target = self.line.claim(self.call_id, targets, busy)
        if target is not None:
            busy.add(target)
            self.held.add(target)
        return target

    async def agent_done(self, target: str) -> None:
        if target in self.held:
            self.held.discard(target)
            self.board.busy.get(self.account, set()).discard(target)

    async def dial(
        self, leg: CallLeg, target: str, ring_timeout: float, caller_id: str | None
    ) -> DialResult | None:
        return None  # one node: it dials its callers' agents itself

    async def leave(self) -> None:
        self.line.leave(self.call_id)

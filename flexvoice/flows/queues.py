"""Callers waiting in a flow's named queues: their order and whose turn it is among the agents.
One board for the node's flows (the runtime keeps it), in memory."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class QueueBoard:
    """Callers waiting in named queues (first come, first served) and whose turn it is
    among each queue's agents (round robin)."""

    def __init__(self) -> None:
        self.lines: dict[str, list[object]] = {}
        self.turn: dict[str, int] = {}

    @contextlib.contextmanager
    def slot(self, name: str) -> Iterator[QueueSlot]:
        slot = QueueSlot(self, name)
        self.lines.setdefault(name, []).append(slot)
        try:
            yield slot
        finally:
            slot.leave()


class QueueSlot:
    def __init__(self, board: QueueBoard, name: str):
        self.board, self.name = board, name

    def position(self) -> int:
        return self.board.lines[self.name].index(self) + 1

    def leave(self) -> None:
        line = self.board.lines.get(self.name, [])
        if self in line:
            line.remove(self)

    def next_target(self, targets: list[str]) -> str:
        n = self.board.turn.get(self.name, 0)
        self.board.turn[self.name] = n + 1
        return targets[n % len(targets)]

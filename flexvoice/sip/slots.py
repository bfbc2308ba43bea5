"""Why a new leg cannot be placed: every worker slot is taken, the node is draining, or
there is no trunk. The leg (dialling children) and the pool (placing legs) both use it."""

from __future__ import annotations


class NoFreeSlot(Exception):
    """Every worker slot is taken (or the pool is draining)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason

"""Receipts that come before their submit is recorded (no I/O).

An SMSC may send a delivery receipt right after its submit_sm_resp; the receipt can then be
read before the part's gateway id is committed, and would match nothing. Such a receipt waits
here (in memory, at most WAIT seconds) and is tried again when a part with one of its id keys
is recorded as sent. Receipts that still match nothing after WAIT are given back to be logged
as unmatched."""

from __future__ import annotations

from dataclasses import dataclass, field

from flexvoice.messaging.model import Receipt, id_keys

WAIT = 60.0
MAX_WAITING = 10_000


@dataclass
class _Waiting:
    deadline: float
    gateway: str
    receipt: Receipt
    done: bool = False


@dataclass
class EarlyReceipts:
    _order: list[_Waiting] = field(default_factory=list)  # by deadline
    _index: dict[tuple[str, str], list[_Waiting]] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(1 for w in self._order if not w.done)

    def park(self, gateway: str, receipt: Receipt, now: float) -> bool:
        """Keep it; False when too many wait already (the caller logs it as unmatched)."""
        while self._order and self._order[0].done:  # taken since: forget them
            self._order.pop(0)
        if len(self._order) >= MAX_WAITING:
            return False
        waiting = _Waiting(now + WAIT, gateway, receipt)
        self._order.append(waiting)
        for key in id_keys(receipt.gateway_id):
            self._index.setdefault((gateway, key), []).append(waiting)
        return True

    def take(self, gateway: str, gateway_id: str) -> list[Receipt]:
        """The waiting receipts that may be for the part just recorded with this id."""
        found: list[Receipt] = []
        for key in id_keys(gateway_id):
            for waiting in self._index.pop((gateway, key), []):
                if not waiting.done:
                    waiting.done = True
                    found.append(waiting.receipt)
        return found

    def expired(self, now: float) -> list[tuple[str, Receipt]]:
        gone: list[tuple[str, Receipt]] = []
        while self._order and (self._order[0].deadline <= now or self._order[0].done):
            waiting = self._order.pop(0)
            if waiting.done:
                continue
            waiting.done = True
            gone.append((waiting.gateway, waiting.receipt))
            for key in id_keys(waiting.receipt.gateway_id):
                left = [w for w in self._index.get((waiting.gateway, key), []) if not w.done]
                if left:
                    self._index[(waiting.gateway, key)] = left
                else:
                    self._index.pop((waiting.gateway, key), None)
        return gone

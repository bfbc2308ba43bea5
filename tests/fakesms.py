"""A gateway in memory for fast unit tests, held to the SMPP gateway by the contract test in
test_messaging_queue.py: ids in hex on submit, receipts naming them in decimal, unavailable
while `up` is False."""

from __future__ import annotations

from dataclasses import dataclass, field

from flexvoice.messaging.gateway import GatewayEvents, GatewayUnavailable
from flexvoice.messaging.model import Receipt
from flexvoice.messaging.text import Part, decode


@dataclass
class FakeGateway:
    name: str = "fake"
    whole_text: bool = False
    up: bool = True
    submitted: list[tuple[str, str, str]] = field(default_factory=list)  # from, to, text
    ids: list[str] = field(default_factory=list)
    events: GatewayEvents | None = None
    _next: int = 0x1000

    async def start(self, events: GatewayEvents) -> None:
        self.events = events

    async def stop(self) -> None:
        pass

    async def submit(self, from_addr: str, to_addr: str, part: Part) -> str:
        if not self.up:
            raise GatewayUnavailable("fake gateway down")
        self._next += 1
        self.submitted.append(
            (from_addr, to_addr, decode(part.payload, part.data_coding, part.esm_class)[0])
        )
        message_id = format(self._next, "x")
        self.ids.append(message_id)
        return message_id

    async def receipt(self, message_id: str, state: str = "DELIVRD") -> None:
        assert self.events is not None
        await self.events.receipt(self.name, Receipt(str(int(message_id, 16)), state))

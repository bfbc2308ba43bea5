"""What the outbound queue needs from a gateway, whatever its protocol.

`submit` hands one part over and returns the gateway's id for it once the gateway has taken
responsibility (SMPP submit_sm_resp OK, SIP 2xx). It raises `GatewayUnavailable` when the
part certainly did not get through and may be tried again later (no connection, throttled,
queue full), and `GatewayRejected` when the gateway refused it for good. Receipts and inbound
messages come back through the `GatewayEvents` the gateway was started with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from flexvoice.messaging.model import Receipt
from flexvoice.messaging.text import Part


class GatewayUnavailable(Exception):
    """Not sent; try again later."""


class GatewayRejected(Exception):
    def __init__(self, code: int, message: str):
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class Inbound:
    from_addr: str
    to_addr: str
    text: str
    concat: tuple[int, int, int] | None = None  # reference, count, index of a long message


class GatewayEvents(Protocol):
    async def receipt(self, gateway: str, receipt: Receipt) -> None: ...

    async def inbound(self, gateway: str, message: Inbound) -> None: ...


class Gateway(Protocol):
    name: str
    whole_text: bool  # True: the whole text in one submit (SIP); False: SMS parts (SMPP)

    async def start(self, events: GatewayEvents) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, from_addr: str, to_addr: str, part: Part) -> str: ...


def smpp_address(number: str) -> tuple[str, int, int]:
    """(address, TON, NPI) for SMPP: E.164 as international/ISDN without the '+', an
    alphanumeric sender as TON 5 (alphanumeric), NPI 0."""
    if number.startswith("+") and number[1:].isdigit():
        return number[1:], 1, 1
    if number.isdigit():
        return number, 1, 1
    return number, 5, 0

"""SIP MESSAGE gateway (RFC 3428): SMS as an IMS operator network takes them, through the
trunk and the edge. The whole text goes in one MESSAGE (text/plain, UTF-8; PJSIP moves a
request over 1,300 bytes to TCP); the operator's network splits it for the handset, and the
message is billed by the same GSM-7/UCS-2 segment rules. A 2xx means the network took it
(`sent`); SIP gives no delivery receipt, so the status stays `sent`."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Protocol

from flexvoice.messaging.gateway import GatewayEvents, GatewayRejected, GatewayUnavailable
from flexvoice.messaging.model import GATEWAY_ERROR, REJECTED, UNKNOWN_DESTINATION
from flexvoice.messaging.text import Part, decode

# Final answers that mean "not now": try again later.
RETRY = {408, 480, 486, 500, 502, 503, 504}
PERMANENT = {404: UNKNOWN_DESTINATION, 484: UNKNOWN_DESTINATION, 403: REJECTED, 488: REJECTED}


class MessageTransport(Protocol):
    async def send_message(self, from_addr: str, to: str, text: str) -> tuple[int, str]: ...


class SipMessageGateway:
    whole_text = True  # one MESSAGE per message, not one per SMS part

    def __init__(self, transport: Callable[[], MessageTransport | None], name: str = "sip"):
        self.name = name
        self.transport = transport
        self.events: GatewayEvents | None = None
        self._ids = itertools.count(1)

    async def start(self, events: GatewayEvents) -> None:
        self.events = events

    async def stop(self) -> None:
        pass

    async def submit(self, from_addr: str, to_addr: str, part: Part) -> str:
        transport = self.transport()
        if transport is None:
            raise GatewayUnavailable("the SIP workers are not running")
        text = decode(part.payload, part.data_coding, part.esm_class)[0]
        try:
            code, reason = await transport.send_message(from_addr, to_addr, text)
        except Exception as exc:  # no worker or trunk right now: the queue retries
            raise GatewayUnavailable(f"SIP MESSAGE not sent: {exc}") from None
        if 200 <= code < 300:
            return f"sip-{next(self._ids)}"
        if code in RETRY:
            raise GatewayUnavailable(f"the trunk answered {code} {reason}")
        raise GatewayRejected(
            PERMANENT.get(code, GATEWAY_ERROR), f"the trunk refused the MESSAGE: {code} {reason}"
        )

"""SIP MESSAGE gateway (RFC 3428): SMS as an IMS operator network takes them, through the
trunk and the edge. The whole text goes in one MESSAGE (text/plain, UTF-8; PJSIP moves a
request over 1,300 bytes to TCP); the operator's network splits it for the handset, and the
message is billed by the same GSM-7/UCS-2 segment rules.

Outcome (RFC 3428 section 7): the final answer of the last hop. `200 OK` means the recipient's
user agent (or the network's last hop speaking for it) took the message: the part is
`delivered`. `202 Accepted` means a store-and-forward server took it for later delivery: the
part stays `sent` (SIP brings no later receipt; IMDN, RFC 5438, is not implemented). Each
answer is matched to its own request (the worker's request user data, see
flexvoice.sip.worker), and the part's gateway id is the MESSAGE's Call-ID."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Protocol

from flexvoice.messaging.gateway import GatewayEvents, GatewayRejected, GatewayUnavailable
from flexvoice.messaging.model import GATEWAY_ERROR, REJECTED, UNKNOWN_DESTINATION, Receipt
from flexvoice.messaging.text import Part, decode

# Final answers that mean "not now": try again later.
RETRY = {408, 480, 486, 500, 502, 503, 504}
PERMANENT = {404: UNKNOWN_DESTINATION, 484: UNKNOWN_DESTINATION, 403: REJECTED, 488: REJECTED}


class MessageTransport(Protocol):
    async def send_message(self, from_addr: str, to: str, text: str) -> tuple[int, str, str]: ...


class SipMessageGateway:
    whole_text = True  # one MESSAGE per message, not one per SMS part

    def __init__(self, transport: Callable[[], MessageTransport | None], name: str = "sip"):
        self.name = name
        self.transport = transport
        self.events: GatewayEvents | None = None
        self._tasks: set[asyncio.Task[None]] = set()

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
            code, reason, call_id = await transport.send_message(from_addr, to_addr, text)
        except Exception as exc:  # no worker or trunk right now: the queue retries
            raise GatewayUnavailable(f"SIP MESSAGE not sent: {exc}") from None
        if 200 <= code < 300:
            gateway_id = call_id or f"sip-{uuid.uuid4().hex}"
            if code == 200 and self.events is not None:
                # Delivered: told as a receipt, the way every gateway tells it; it is applied
                # once the queue has recorded this id (it runs after this returns).
                task = asyncio.create_task(
                    self.events.receipt(self.name, Receipt(gateway_id, "DELIVRD"))
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return gateway_id
        if code in RETRY:
            raise GatewayUnavailable(f"the trunk answered {code} {reason}")
        raise GatewayRejected(
            PERMANENT.get(code, GATEWAY_ERROR), f"the trunk refused the MESSAGE: {code} {reason}"
        )

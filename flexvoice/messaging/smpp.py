"""SMPP 3.4 gateway to an SMSC, on PyPI `smpp34` (a Rust/tokio SMPP core with an asyncio API).

Why this client: the queue, its retries and the receipt correlation must live in our SQLite,
so the gateway has to be a thin `submit -> message id` call. smpp34's `await submit_sm(...)`
is exactly that (windowed, enquire_link handled in its core). aiosmpplib, the other asyncio
client, is built around its own broker queue, hooks and in-memory correlator, and by default
sends a long text whole in one `message_payload` (`auto_message_payload=True`); we split into
concatenated parts ourselves (flexvoice.messaging.text) so that each part is billed,
acknowledged and receipted on its own.

One bound transceiver session; lost, it is bound again at the next submit. A background task
reads deliver_sm: delivery receipts (esm_class 0x04) and inbound messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time

import smpp34

from flexvoice.logs import get_logger
from flexvoice.messaging.gateway import (
    Gateway,
    GatewayEvents,
    GatewayRejected,
    GatewayUnavailable,
    Inbound,
    smpp_address,
)
from flexvoice.messaging.model import (
    GATEWAY_ERROR,
    REJECTED,
    UNKNOWN_DESTINATION,
    parse_receipt,
)
from flexvoice.messaging.text import Part, decode

log = get_logger(__name__)

ESM_RECEIPT = 0x04
# command_status values that mean "not now" rather than "never".
TRANSIENT = {0x14, 0x58, 0x08, 0x64}  # RMSGQFUL, RTHROTTLED, RSYSERR, RX_T_APPN (temp error)
PERMANENT = {
    0x0B: UNKNOWN_DESTINATION,
    0x0A: REJECTED,
    0x45: REJECTED,
}  # RINVDSTADR, RINVSRCADR, RSUBMITFAIL
_STATUS = re.compile(r"ESME_\w+ \(0x([0-9A-Fa-f]{8})\)")
TLV_RECEIPTED_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427
TLV_MESSAGE_PAYLOAD = 0x0424
# deliver_sm being handled at once (receipts of one turn share a commit), and those smpp34
# keeps for us meanwhile (its default, 1,024, is less than one second of receipts at the
# benchmark's rate; when it is full the core NAKs deliver_sm with ESME_RSYSERR).
IN_FLIGHT = 512
INBOUND_CAPACITY = 16384


class SmppGateway:
    whole_text = False

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        system_id: str,
        password_env: str,
        system_type: str = "",
        connect_timeout: float = 5.0,
        submit_timeout: float = 30.0,
    ):
        self.name = name
        self.host = host
        self.port = port
        self.system_id = system_id
        self.password_env = password_env
        self.system_type = system_type
        self.connect_timeout = connect_timeout
        self.submit_timeout = submit_timeout
        self._client: smpp34.Client | None = None
        self._session: smpp34.Smsc | None = None
        self._reader: asyncio.Task[None] | None = None
        self._events: GatewayEvents | None = None
        self._bind_lock = asyncio.Lock()
        self._failed: tuple[float, str] | None = None  # (when, why) of the last failed bind

    async def start(self, events: GatewayEvents) -> None:
        self._events = events
        with contextlib.suppress(GatewayUnavailable):
            await self._bound()  # bind early to get receipts; failing is fine, retried

    async def stop(self) -> None:
        await self._drop(unbind=True)

    async def _bound(self) -> smpp34.Smsc:
        if self._session is not None:
            return self._session
        async with self._bind_lock:
            if self._session is not None:
                return self._session
            if self._failed is not None and time.monotonic() - self._failed[0] < 1.0:
                # Parts waiting on this lock while a bind failed: fail them at once rather than
                # try again each (an SMSC that drops SYNs would cost connect_timeout per part).
                raise GatewayUnavailable(self._failed[1])
            client = smpp34.Client(
                host=self.host,
                port=self.port,
                system_id=self.system_id,
                password=os.environ.get(self.password_env, "") if self.password_env else "",
                bind_type="TRX",
                system_type=self.system_type,
                connect_timeout_ms=int(self.connect_timeout * 1000),
                inbound_capacity=INBOUND_CAPACITY,
            )
            try:
                session = await asyncio.wait_for(client.connect(), self.connect_timeout + 1)
            except (smpp34.SmppError, OSError, TimeoutError) as exc:
                with contextlib.suppress(Exception):
                    await client.stop()
                why = f"SMSC {self.host}:{self.port} not reachable: {exc}"
                self._failed = (time.monotonic(), why)
                raise GatewayUnavailable(why) from None
            self._failed = None
            self._client, self._session = client, session
            self._reader = asyncio.create_task(self._read(session), name=f"smpp-{self.name}")
            log.info("smpp.bound", gateway=self.name, smsc=f"{self.host}:{self.port}")
            return session

    async def _drop(self, unbind: bool = False) -> None:
        session, client, reader = self._session, self._client, self._reader
        self._session = self._client = self._reader = None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        if session is not None and unbind:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.unbind(), 2)
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.stop(), 2)

    async def submit(self, from_addr: str, to_addr: str, part: Part) -> str:
        session = await self._bound()
        source, source_ton, source_npi = smpp_address(from_addr)
        dest, dest_ton, dest_npi = smpp_address(to_addr)
        try:
            resp = await asyncio.wait_for(
                session.submit_sm(
                    destination_addr=dest,
                    short_message=part.payload,
                    source_addr=source,
                    source_addr_ton=source_ton,
                    source_addr_npi=source_npi,
                    dest_addr_ton=dest_ton,
                    dest_addr_npi=dest_npi,
                    esm_class=part.esm_class,
                    data_coding=part.data_coding,
                    registered_delivery=1,  # a receipt for success and failure
                ),
                self.submit_timeout,
            )
        except TimeoutError:
            # No answer in time (an overloaded SMSC, or us): the part is tried again. The
            # session stays: the other parts in flight on it still get their answers. (If the
            # SMSC did take this one, this is the one way a duplicate can happen.)
            raise GatewayUnavailable(
                f"no submit_sm_resp from {self.host}:{self.port} within {self.submit_timeout:.0f}s"
            ) from None
        except (smpp34.SmppError, OSError) as exc:
            nak = _STATUS.search(str(exc))
            if nak is not None:
                # The SMSC answered with an error status (smpp34 raises it): the session is
                # fine, and dropping it would lose the answers to the other parts in flight.
                status = int(nak.group(1), 16)
                if status in TRANSIENT:
                    raise GatewayUnavailable(f"SMSC busy: {exc}") from None
                raise GatewayRejected(
                    PERMANENT.get(status, GATEWAY_ERROR), f"the SMSC refused the message: {exc}"
                ) from None
            # The session broke: bind again at the next submit.
            await self._drop()
            raise GatewayUnavailable(
                f"submit_sm to {self.host}:{self.port} failed: {exc}"
            ) from None
        status = resp.command_status
        if resp.is_success and resp.message_id:
            return str(resp.message_id)
        if status in TRANSIENT:
            raise GatewayUnavailable(f"SMSC busy (command_status 0x{status:08X})")
        raise GatewayRejected(
            PERMANENT.get(status, GATEWAY_ERROR),
            f"the SMSC refused the message (command_status 0x{status:08X})",
        )

    async def _read(self, session: smpp34.Smsc) -> None:
        """Take deliver_sm as fast as they come: each is handled in its own task (at most
        IN_FLIGHT at a time), so that the receipts read in one turn of the event loop are
        written in one transaction. Handled one after the other, at one commit each, they
        fell behind a busy SMSC, smpp34's inbound buffer filled, its core NAKed deliver_sm
        with ESME_RSYSERR, and the SMSC then refused every submit_sm (the stall after
        ~1,150 submits with receipts on)."""
        limit = asyncio.Semaphore(IN_FLIGHT)
        tasks: set[asyncio.Task[None]] = set()

        async def handle(ev: smpp34.DeliverSmEvent) -> None:
            try:
                await self._deliver(ev)
            except Exception:
                log.exception("smpp.deliver_failed", gateway=self.name)
            finally:
                limit.release()

        try:
            while True:
                ev = await session.next()
                if isinstance(ev, smpp34.Disconnected):
                    log.warning("smpp.disconnected", gateway=self.name)
                    break
                await limit.acquire()  # back-pressure: smpp34's buffer holds the rest
                task = asyncio.create_task(handle(ev))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            if tasks:  # receipts already read are stored, not dropped
                await asyncio.gather(*tasks, return_exceptions=True)
            if self._session is session:
                self._session = None
                client, self._client, self._reader = self._client, None, None
                if client is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(client.stop(), 2)

    async def _deliver(self, ev: smpp34.DeliverSmEvent) -> None:
        assert self._events is not None
        tlvs = {t.tag: t for t in ev.tlvs}
        payload = ev.short_message
        if not payload and TLV_MESSAGE_PAYLOAD in tlvs:
            payload = tlvs[TLV_MESSAGE_PAYLOAD].value
        if ev.esm_class & ESM_RECEIPT:
            receipted = tlvs.get(TLV_RECEIPTED_ID)
            state = tlvs.get(TLV_MESSAGE_STATE)
            receipt = parse_receipt(
                payload.decode("latin-1"),
                (receipted.as_string() or None) if receipted else None,
                state.as_int() if state else None,
            )
            if receipt is None:
                log.warning("smpp.receipt_unreadable", gateway=self.name)
                return
            await self._events.receipt(self.name, receipt)
            return
        text, concat = decode(payload, ev.data_coding, ev.esm_class)
        await self._events.inbound(
            self.name,
            Inbound(
                _e164(ev.source_addr, ev.source_addr_ton),
                _e164(ev.destination_addr, ev.dest_addr_ton),
                text,
                concat,
            ),
        )


def _e164(address: str, ton: int) -> str:
    if address.isdigit() and (ton == 1 or len(address) > 8):
        return "+" + address
    return address


_: type[Gateway] = SmppGateway

"""The messaging service: checks and stores outbound messages, runs the persistent queue over
the gateways (retry with back-off, validity period), applies receipts, takes inbound messages
(STOP/START, webhook), records one `sms` usage event per message and sends status callbacks.

The asyncio parts are thin: `pump()` does one pass over what is due and says how long until
the next; `run()` only loops over it. The clock is injected.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from flexvoice.calls import WebhookSender
from flexvoice.config import ALPHANUMERIC_SENDER
from flexvoice.logs import get_logger
from flexvoice.messaging.gateway import Gateway, GatewayRejected, GatewayUnavailable, Inbound
from flexvoice.messaging.model import (
    ERROR_TEXT,
    EXPIRED,
    GATEWAY_ERROR,
    OPTED_OUT,
    Receipt,
    message_status,
)
from flexvoice.messaging.store import DuePart, MessageRow, MessageStore, new_id
from flexvoice.messaging.text import DATA_CODING, MAX_BODY, Part, split
from flexvoice.metering.destinations import BadNumber, classify
from flexvoice.metering.quote import quote
from flexvoice.metering.tariffs import TariffBook

log = get_logger(__name__)

STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "ARRET", "STOPP"}
)
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
ALPHANUMERIC_RE = re.compile(ALPHANUMERIC_SENDER)
MASK = "#"


class NumberOwner(Protocol):
    def lookup(self, e164: str) -> Any: ...  # an object with .account, or None


class UsageRecorder(Protocol):
    def record(self, event: dict[str, Any]) -> None: ...


class MessageRefused(Exception):
    """A message that cannot be sent as asked: the field at fault and what to do."""

    def __init__(
        self, field: str, detail: str, kind: str = "invalid-field", code: int | None = None
    ):
        self.field = field
        self.kind = kind
        self.code = code
        super().__init__(detail)


@dataclass(frozen=True)
class AccountSettings:
    senders: tuple[str, ...] = ()  # alphanumeric sender names the account may use
    sms_url: str | None = None  # inbound messages are POSTed here
    gateway: str | None = None  # overrides the node's default gateway


@dataclass(frozen=True)
class Settings:
    default_gateway: str | None = None
    retry_base: float = 2.0
    retry_max: float = 300.0
    validity: float = 86400.0
    window: int = 32  # parts in flight per pass
    accounts: Mapping[str, AccountSettings] = field(default_factory=dict)

    def account(self, name: str) -> AccountSettings:
        return self.accounts.get(name, AccountSettings())

    def gateway_for(self, account: str) -> str | None:
        return self.account(account).gateway or self.default_gateway


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Messaging:
    def __init__(
        self,
        conn: sqlite3.Connection,
        gateways: Mapping[str, Gateway],
        settings: Settings,
        *,
        numbers: NumberOwner | None = None,
        usage: UsageRecorder | None = None,
        webhooks: WebhookSender | None = None,
        tariffs: TariffBook | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.conn = conn
        self.store = MessageStore(conn)
        self.gateways = dict(gateways)
        self.settings = settings
        self.numbers = numbers
        self.usage = usage
        self.webhooks = webhooks
        self.tariffs = tariffs
        self.clock = clock
        self._wake = asyncio.Event()
        self._down: dict[str, tuple[int, float]] = {}  # gateway -> (failures, retry at)
        self._secret_bodies: dict[str, str] = {}  # message id -> body with a code, memory only
        self._concat: dict[tuple[str, str, int], dict[int, str]] = {}
        self._after_commit: list[MessageRow] = []

    # ---- sending -----------------------------------------------------------------------

    def check(
        self, account: str, from_addr: str, to_addr: str, body: str, trusted_sender: bool = False
    ) -> tuple[str, Decimal | None]:
        """Raise MessageRefused naming the field; return the gateway and the price of one
        segment under the account's tariff."""
        if not body:
            raise MessageRefused("body", "body: the message is empty; write the text to send")
        if len(body) > MAX_BODY:
            raise MessageRefused(
                "body",
                f"body: {len(body)} characters, at most {MAX_BODY}; shorten it or send it as "
                "two messages",
            )
        try:
            kind = classify(to_addr)
        except BadNumber as exc:
            raise MessageRefused("to", f"to: {exc}", "invalid-number") from None
        if not kind.endswith(("mobile", "fixed_or_mobile")):
            raise MessageRefused(
                "to",
                f"to: {to_addr} is a {kind} number; SMS go to mobile numbers only",
                "invalid-number",
            )
        if not trusted_sender:
            self._check_sender(account, from_addr)
        price, note = quote(
            self.conn,
            self.tariffs,
            {
                "id": "quote",
                "account": account,
                "kind": "sms",
                "from": from_addr,
                "to": to_addr,
                "sent_at": _iso(self.clock()),
                "segments": 1,
            },
        )
        if price is None:
            raise MessageRefused(
                "to", f"to: SMS to {to_addr} cannot be priced for this account ({note})"
            )
        if self.store.opted_out(from_addr, to_addr):
            raise MessageRefused(
                "to",
                f"to: {to_addr} replied STOP to {from_addr} and does not receive messages from "
                "it any more, until they send START (error 21610)",
                "recipient-opted-out",
                OPTED_OUT,
            )
        gateway = self.settings.gateway_for(account)
        if gateway is None or gateway not in self.gateways:
            raise MessageRefused(
                "from",
                "this node has no SMS gateway configured (messaging.gateway in flexvoice.yaml)",
                "service-unavailable",
            )
        return gateway, price

    def _check_sender(self, account: str, from_addr: str) -> None:
        if from_addr.startswith("+"):
            number = self.numbers.lookup(from_addr) if self.numbers is not None else None
            if number is None or number.account != account:
                raise MessageRefused(
                    "from",
                    f"from: {from_addr} is not one of this account's numbers "
                    "(GET /v1/numbers lists them)",
                )
            return
        if len(from_addr) > 11 or not ALPHANUMERIC_RE.match(from_addr):
            raise MessageRefused(
                "from",
                f"from: '{from_addr}' is neither a number in E.164 (+32...) nor an alphanumeric "
                "sender (1 to 11 letters, digits and spaces, at least one letter)",
            )
        if from_addr not in self.settings.account(account).senders:
            raise MessageRefused(
                "from",
                f"from: the alphanumeric sender '{from_addr}' is not allowed for this account; "
                "the operator lists allowed senders in messaging.accounts.<account>.senders",
            )

    def send(
        self,
        account: str,
        from_addr: str,
        to_addr: str,
        body: str,
        *,
        origin: str = "api",
        status_callback: str | None = None,
        secret: str | None = None,
        trusted_sender: bool = False,
    ) -> MessageRow:
        """Store the message and its parts (queued); the queue sends them. `secret` (a
        verification code inside `body`) is never written to the database: the stored body
        and parts carry it masked, and the real text lives in memory until the gateway has
        taken it. `trusted_sender`: the node's own sender (verification codes)."""
        gateway, unit_price = self.check(account, from_addr, to_addr, body, trusted_sender)
        now = self.clock()
        stored_body = body.replace(secret, MASK * len(secret)) if secret else body
        # Digits and the mask are single units in both GSM-7 and UCS-2: same parts either way.
        encoding, parts, count = self._parts(gateway, stored_body, secrets.randbelow(256))
        message_id = new_id()
        price = unit_price * count if unit_price is not None else None
        row = self.store.add_outbound(
            message_id=message_id,
            account=account,
            origin=origin,
            from_addr=from_addr,
            to_addr=to_addr,
            body=stored_body,
            encoding=encoding,
            parts=parts,
            segments=count,
            gateway=gateway,
            status_callback=status_callback,
            now=now,
            expires_at=now + self.settings.validity,
            price_eur=str(price) if price is not None else None,
            price_note=None,
        )
        if secret:
            self._secret_bodies[message_id] = body
        log.info(
            "sms.queued",
            message_id=message_id,
            account=account,
            segments=count,
            encoding=encoding,
            origin=origin,
        )
        self._wake.set()
        return row

    def _parts(self, gateway: str, body: str, reference: int) -> tuple[str, list[Part], int]:
        """(encoding, parts to submit, segments billed). A whole-text gateway (SIP) takes one
        part holding all the text (as UCS-2: any character fits); the bill counts the SMS
        segments the network makes of it, by the same rules."""
        encoding, parts = split(body, reference)
        found = self.gateways.get(gateway)
        if found is not None and found.whole_text:
            return encoding, [Part(body.encode("utf-16-be"), DATA_CODING["UCS-2"], 0)], len(parts)
        return encoding, parts, len(parts)

    # ---- the queue ---------------------------------------------------------------------

    def backoff(self, failures: int) -> float:
        return float(
            min(
                self.settings.retry_base * 2 ** min(max(0, failures - 1), 30),
                self.settings.retry_max,
            )
        )

    async def run(self) -> None:
        resumed = self.store.resume()
        if resumed:
            log.info("sms.resumed", parts=resumed)
        while True:
            try:
                delay = await self.pump()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sms.queue_error")
                delay = 1.0
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    def wake(self) -> None:
        self._wake.set()

    async def pump(self) -> float:
        """Send what is due; return the seconds until something else is."""
        now = self.clock()
        due = self.store.due(now, self.settings.window * 4)
        ready: list[DuePart] = []
        for part in due:
            if part.expires_at <= now:
                self.store.fail_queued(part.message_id, f"{EXPIRED} validity period over")
                self._refresh(part.message_id, EXPIRED, ERROR_TEXT[EXPIRED])
                self._flush()
                continue
            down = self._down.get(part.gateway)
            if down is not None and down[1] > now:
                self.store.part_retry(part, "gateway down", down[1])
                continue
            ready.append(part)
        if ready:
            self.store.claim(ready)
            limit = asyncio.Semaphore(self.settings.window)

            async def one(part: DuePart) -> None:
                async with limit:
                    try:
                        await self._submit(part)
                    except Exception as exc:  # a bug must not strand the part in 'sending'
                        log.exception("sms.submit_error", message_id=part.message_id)
                        self.store.part_retry(part, repr(exc), self.clock() + self.backoff(1))

            await asyncio.gather(*(one(p) for p in ready))
            return 0.0 if len(due) >= self.settings.window * 4 else self._until_next()
        return self._until_next()

    def _until_next(self) -> float:
        nxt = self.store.next_due()
        if nxt is None:
            return 60.0
        return max(0.0, min(60.0, nxt - self.clock()))

    async def _submit(self, part: DuePart) -> None:
        gateway = self.gateways.get(part.gateway)
        payload = part.part
        secret_body = self._secret_bodies.get(part.message_id)
        if secret_body is not None:
            payload = self._parts(part.gateway, secret_body, 0)[1][part.seq]
            if part.part.esm_class:  # keep the reference the stored parts were made with
                payload = type(payload)(
                    part.part.payload[:6] + payload.payload[6:],
                    payload.data_coding,
                    payload.esm_class,
                )
        elif self._is_secret(part.message_id):
            self._fail_part(
                part,
                GATEWAY_ERROR,
                "the verification code was lost in a restart; request a new one",
            )
            return
        if gateway is None:
            self._fail_part(
                part, GATEWAY_ERROR, f"gateway '{part.gateway}' is not configured on this node"
            )
            return
        try:
            gateway_id = await gateway.submit(part.from_addr, part.to_addr, payload)
        except GatewayUnavailable as exc:
            failures = self._down.get(part.gateway, (0, 0.0))[0] + 1
            at = self.clock() + self.backoff(failures)
            self._down[part.gateway] = (failures, at)
            self.store.part_retry(part, str(exc), at)
            log.warning(
                "sms.gateway_unavailable",
                gateway=part.gateway,
                message_id=part.message_id,
                error=str(exc),
                retry_in=round(at - self.clock(), 1),
            )
            return
        except GatewayRejected as exc:
            self._fail_part(part, exc.code, str(exc))
            return
        self._down.pop(part.gateway, None)
        with self.store.tx():
            self.store.part_sent(part, gateway_id)
            self._refresh(part.message_id)
        self._flush()

    def _is_secret(self, message_id: str) -> bool:
        row = self.store.get(message_id)
        return row is not None and row.origin == "verification"

    def _fail_part(self, part: DuePart, code: int, message: str) -> None:
        self.store.part_failed(part.message_id, part.seq, f"{code} {message}")
        log.warning(
            "sms.part_failed",
            message_id=part.message_id,
            part=part.seq + 1,
            error_code=code,
            error=message,
        )
        self._refresh(part.message_id, code, message)
        self._flush()

    def _refresh(
        self, message_id: str, error_code: int | None = None, error: str | None = None
    ) -> None:
        """Recompute the message from its parts; bill, call back and forget secrets as due."""
        row = self.store.get(message_id)
        if row is None:
            return
        parts = self.store.part_statuses(message_id)
        status = message_status(parts)
        now = self.clock()
        fields: dict[str, Any] = {}
        if status != row.status:
            fields["status"] = status
        if (
            status in ("failed", "undelivered")
            and error_code is not None
            and row.error_code is None
        ):
            fields["error_code"] = error_code
            fields["error_message"] = error or ERROR_TEXT.get(error_code, "")
        settled = not any(p in ("queued", "sending") for p in parts)
        accepted = self.store.accepted_parts(message_id)
        # All parts taken: the message's segments (a whole-text gateway has one part for all).
        billable = row.segments if accepted == len(parts) else accepted
        if settled and accepted and row.sent_at is None:
            fields["sent_at"] = now
        if fields:
            fields["updated_at"] = now
            self.store.update_message(message_id, **fields)
        if settled:
            self._secret_bodies.pop(message_id, None)
            if accepted and self.store.mark_billed(message_id):
                self._bill(row, billable, now)
            elif not accepted and row.billed == 0:
                self.store.update_message(message_id, price_eur="0", billed=1)
        if "status" in fields:
            updated = self.store.get(message_id)
            assert updated is not None
            log.info(
                "sms.status", message_id=message_id, status=status, error_code=updated.error_code
            )
            # After the commit: the webhook queue writes through another connection.
            self._after_commit.append(updated)

    def _flush(self) -> None:
        done, self._after_commit = self._after_commit, []
        for row in done:
            self._callback(row)

    def _bill(self, row: MessageRow, segments: int, now: float) -> None:
        event = {
            "id": f"sms:{row.id}",
            "account": row.account,
            "kind": "sms",
            "from": row.from_addr,
            "to": row.to_addr,
            "sent_at": _iso(now),
            "segments": segments,
        }
        price, note = quote(self.conn, self.tariffs, event)
        self.store.update_message(
            row.id, price_eur=str(price) if price is not None else None, price_note=note
        )
        if self.usage is not None:
            self.usage.record(event)
        else:
            log.warning(
                "sms.usage_not_recorded", message_id=row.id, reason="no usage sink on this node"
            )

    def _callback(self, row: MessageRow) -> None:
        if self.webhooks is None or not row.status_callback:
            return
        self.webhooks.enqueue(
            row.account,
            row.status_callback,
            row.status,
            {"event": row.status, "message": self.resource(row)},
        )

    # ---- from the gateways -------------------------------------------------------------

    async def receipt(self, gateway: str, receipt: Receipt) -> None:
        found = self.store.find_part(gateway, receipt.gateway_id)
        if found is None:
            log.warning(
                "sms.receipt_unmatched",
                gateway=gateway,
                gateway_id=receipt.gateway_id,
                state=receipt.state,
            )
            return
        message_id, seq = found
        code = receipt.error_code
        error = f"{code} receipt {receipt.state} err:{receipt.error}" if code else None
        with self.store.tx():
            if self.store.set_part_status(message_id, seq, receipt.status, error):
                self._refresh(message_id, code, ERROR_TEXT.get(code or 0))
        self._flush()

    async def inbound(self, gateway: str, message: Inbound) -> None:
        text = message.text
        if message.concat is not None:
            ref, count, index = message.concat
            key = (message.from_addr, message.to_addr, ref)
            got = self._concat.setdefault(key, {})
            got[index] = text
            if len(got) < count:
                return
            text = "".join(got[i] for i in sorted(got))
            del self._concat[key]
        number = self.numbers.lookup(message.to_addr) if self.numbers is not None else None
        if number is None:
            log.warning("sms.inbound_unknown_number", gateway=gateway, to=message.to_addr)
            return
        account = str(number.account)
        now = self.clock()
        keyword = text.strip().upper()
        if keyword in STOP_WORDS:
            self.store.opt_out(message.to_addr, message.from_addr, now)
            log.info("sms.opt_out", sender=message.to_addr, number=message.from_addr)
        elif keyword in START_WORDS:
            self.store.opt_in(message.to_addr, message.from_addr)
            log.info("sms.opt_in", sender=message.to_addr, number=message.from_addr)
        encoding, parts = split(text, 0)
        row = self.store.add_inbound(
            account=account,
            from_addr=message.from_addr,
            to_addr=message.to_addr,
            body=text,
            encoding=encoding,
            segments=len(parts),
            now=now,
            gateway=gateway,
        )
        log.info("sms.received", message_id=row.id, account=account, gateway=gateway)
        url = self.settings.account(account).sms_url
        if url and self.webhooks is not None:
            self.webhooks.enqueue(
                account, url, "received", {"event": "received", "message": self.resource(row)}
            )

    # ---- reading -----------------------------------------------------------------------

    def resource(self, row: MessageRow) -> dict[str, Any]:
        return {
            "id": row.id,
            "direction": row.direction,
            "from": row.from_addr,
            "to": row.to_addr,
            "body": row.body,
            "status": row.status,
            "segments": row.segments,
            "encoding": row.encoding,
            "price_eur": row.price_eur,
            "price_note": row.price_note,
            "error_code": row.error_code,
            "error_message": row.error_message,
            "created_at": _iso(row.created_at),
            "updated_at": _iso(row.updated_at),
            "sent_at": _iso(row.sent_at),
        }

"""Accepting an outbound message: the checks that name the field at fault, then the message
and its parts stored `queued` (the queue sends them)."""

from __future__ import annotations

import re
import secrets
from decimal import Decimal
from typing import Any

from flexvoice.config import ALPHANUMERIC_SENDER
from flexvoice.logs import get_logger
from flexvoice.messaging.context import MASK, Context, MessageRefused, iso
from flexvoice.messaging.model import OPTED_OUT
from flexvoice.messaging.store import MessageRow, new_id
from flexvoice.messaging.text import MAX_BODY
from flexvoice.metering.destinations import BadNumber, classify

log = get_logger(__name__)

ALPHANUMERIC_RE = re.compile(ALPHANUMERIC_SENDER)


class Accepting(Context):
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
        self.lookups.fresh()
        if not trusted_sender:
            self._check_sender(account, from_addr)
        now = self.clock()
        price, note = self.lookups.sms_price(account, from_addr, to_addr, iso(now) or "", now)
        if price is None:
            raise MessageRefused(
                "to", f"to: SMS to {to_addr} cannot be priced for this account ({note})"
            )
        if self.lookups.opted_out(from_addr, to_addr):
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
            if self.lookups.owner(from_addr) != account:
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

    def _prepare(
        self,
        account: str,
        from_addr: str,
        to_addr: str,
        body: str,
        origin: str,
        status_callback: str | None,
        secret: str | None,
        trusted_sender: bool,
    ) -> dict[str, Any]:
        """The checked message, ready for MessageStore.add_outbound (with its id)."""
        gateway, unit_price = self.check(account, from_addr, to_addr, body, trusted_sender)
        now = self.clock()
        stored_body = body.replace(secret, MASK * len(secret)) if secret else body
        # Digits and the mask are single units in both GSM-7 and UCS-2: same parts either way.
        encoding, parts, count = self.parts_for(gateway, stored_body, secrets.randbelow(256))
        price = unit_price * count if unit_price is not None else None
        return {
            "account": account,
            "origin": origin,
            "from_addr": from_addr,
            "to_addr": to_addr,
            "body": stored_body,
            "encoding": encoding,
            "parts": parts,
            "segments": count,
            "gateway": gateway,
            "status_callback": status_callback,
            "now": now,
            "expires_at": now + self.settings.validity,
            "price_eur": str(price) if price is not None else None,
            "price_note": None,
        }

    def _queued(self, row: MessageRow) -> MessageRow:
        log.info(
            "sms.queued",
            message_id=row.id,
            account=row.account,
            segments=row.segments,
            encoding=row.encoding,
            origin=row.origin,
        )
        self._wake.set()
        return row

    async def send(
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
        """Check the message (MessageRefused names the field), store it with its parts
        (queued) and return it once committed; the queue sends them. The messages asked for
        within one turn of the event loop are checked and committed together (group commit:
        one WAL commit for many messages). `secret` (a verification code inside `body`) is
        never written to the database: the stored body and parts carry it masked, and the
        real text lives in memory until the gateway has taken it. `trusted_sender`: the
        node's own sender (verification codes)."""
        message_id = new_id()
        if secret:
            self._secret_bodies[message_id] = body

        def store() -> MessageRow:
            fields = self._prepare(
                account, from_addr, to_addr, body, origin, status_callback, secret, trusted_sender
            )
            return self.store.add_outbound(message_id=message_id, **fields)

        try:
            row = await self.commits.write(store)
        except Exception:  # not stored (a waiter cancelled still has its message stored)
            self._secret_bodies.pop(message_id, None)
            raise
        return self._queued(row)

    accept = send  # the REST API's word

"""Verifications: start (or resend), check, cancel. Codes go out by SMS through the messaging
service or by a call that speaks them (a `VoiceCaller`); each request records one
`verification` usage event.

The plain code exists only in memory, for resending the same code within its validity, and
in the SMS queue's memory until the gateway has it; the database holds its HMAC. After a
restart a resend makes a new code (the old one stops matching).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from flexvoice.logs import get_logger
from flexvoice.messaging.service import MessageRefused, Messaging, UsageRecorder
from flexvoice.metering.quote import quote
from flexvoice.metering.tariffs import TariffBook
from flexvoice.storage.engine import Connection
from flexvoice.storage.thread import StoreThread
from flexvoice.verify.core import (
    Channel,
    Policy,
    Refused,
    after_check,
    check_destination,
    code_mac,
    code_matches,
    new_code,
    prefix_of,
    prefix_wait,
    send_wait,
)
from flexvoice.verify.store import VerificationRow, VerificationStore, new_id

log = get_logger(__name__)

TEXTS = {
    "en": "Your verification code is {code}. It is valid for {minutes} minutes. Never share it.",
    "nl": "Uw verificatiecode is {code}. Ze is {minutes} minuten geldig. Deel ze met niemand.",
    "fr": "Votre code de vérification est {code}. Il est valable {minutes} minutes. "
    "Ne le partagez avec personne.",
    "de": "Ihr Bestätigungscode lautet {code}. Er ist {minutes} Minuten gültig. "
    "Geben Sie ihn nicht weiter.",
}


class VoiceCaller(Protocol):
    async def speak_code(self, account: str, to: str, code: str, locale: str) -> str:
        """Start the call that speaks `code`; return its call id. Raise ConnectionError when
        no call can be placed, FileNotFoundError when prompts are missing."""
        ...

    async def close(self) -> None: ...


class SendLimited(Exception):
    def __init__(self, retry_after: float, detail: str):
        self.retry_after = retry_after
        super().__init__(detail)


class NotFound(Exception):
    pass


@dataclass
class VerifySettings:
    policy: Policy
    sender: str
    account_countries: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def countries(self, account: str) -> Sequence[str]:
        return self.account_countries.get(account) or self.policy.countries


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Verifier:
    def __init__(
        self,
        conn: Connection,
        secret: bytes,
        settings: VerifySettings,
        messaging: Messaging | None,
        *,
        voice: VoiceCaller | None = None,
        usage: UsageRecorder | None = None,
        tariffs: TariffBook | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.conn = conn
        self.store = VerificationStore(conn)
        self.db = StoreThread(conn, "verify")  # every statement below goes through it
        self.secret = secret
        self.settings = settings
        self.policy = settings.policy
        self.messaging = messaging
        self.voice = voice
        self.usage = usage
        self.tariffs = tariffs
        self.clock = clock
        self._codes: dict[str, tuple[str, float]] = {}  # id -> (code, expires), memory only
        self._calls: set[asyncio.Task[None]] = set()

    # ---- start / resend ----------------------------------------------------------------

    async def start(
        self, account: str, to: str, channel: Channel, code_length: int, locale: str
    ) -> VerificationRow:
        """Raise Refused (422), SendLimited (429) or MessageRefused (from messaging)."""
        now = self.clock()
        try:
            check_destination(to, channel, self.settings.countries(account))
        except Refused:
            log.warning("verify.refused_destination", account=account, to=to, channel=channel)
            raise
        row, code = await self.db.run(
            lambda: self._code_for(account, to, channel, code_length, locale, now)
        )
        return await self._send(row, code, account, to, channel, locale, now)

    def _code_for(
        self, account: str, to: str, channel: Channel, code_length: int, locale: str, now: float
    ) -> tuple[VerificationRow, str]:
        """The send limits checked, and the verification to send: the pending one with its
        code (a resend), or a new one."""
        self._forget_expired(now)
        wait = send_wait(self.store.sends_to(to, now - self.policy.send_window), now, self.policy)
        if wait > 0:
            raise SendLimited(
                wait,
                f"{self.policy.max_sends} codes were sent to {to} in the last "
                f"{int(self.policy.send_window // 60)} minutes; try again after Retry-After "
                "seconds",
            )
        prefix = prefix_of(to)
        wait = prefix_wait(self.store.sends_to_prefix(prefix, now - 60.0), now, self.policy)
        if wait > 0:
            log.warning("verify.prefix_limited", prefix=prefix)
            raise SendLimited(
                wait,
                f"too many codes to numbers starting {prefix} in the last minute (a guard "
                "against SMS pumping); try again after Retry-After seconds",
            )
        row = self.store.pending_for(account, to, channel, now)
        if row is not None and row.code_length == code_length and row.id in self._codes:
            code = self._codes[row.id][0]  # resend the same code; validity unchanged
        else:
            if row is not None:
                self.store.set_status(row.id, "canceled")  # superseded: its code stops working
            code = new_code(code_length)
            row = VerificationRow(
                id=new_id(),
                account=account,
                to_addr=to,
                channel=channel,
                locale=locale,
                code_length=code_length,
                code_mac=code_mac(self.secret, "", ""),
                status="pending",
                checks=0,
                sends=0,
                created_at=now,
                expires_at=now + self.policy.validity,
                price_eur=None,
                message_id=None,
                call_id=None,
            )
            row.code_mac = code_mac(self.secret, row.id, code)
            self.store.create(row)
            self._codes[row.id] = (code, row.expires_at)
        return row, code

    async def _send(
        self, row: VerificationRow, code: str, account: str, to: str, channel: Channel,
        locale: str, now: float,
    ) -> VerificationRow:  # fmt: skip
        message_id = call_id = None
        if channel == "sms":
            assert self.messaging is not None
            text = TEXTS.get(locale, TEXTS["en"]).format(
                code=code, minutes=int(self.policy.validity // 60)
            )
            message = await self.messaging.send(
                account,
                self.settings.sender,
                to,
                text,
                origin="verification",
                secret=code,
                trusted_sender=True,
            )
            message_id = message.id
        else:
            if self.voice is None:
                raise MessageRefused(
                    "channel", "channel: voice is not available on this node", "service-unavailable"
                )
            try:
                call_id = await self.voice.speak_code(account, to, code, locale)
            except (ConnectionError, FileNotFoundError) as exc:
                raise MessageRefused(
                    "channel", f"channel: voice is not available now ({exc})", "service-unavailable"
                ) from None
        found = await self.db.run(
            lambda: self._sent(row, account, to, channel, now, message_id, call_id)
        )
        log.info("verify.sent", verification_id=row.id, account=account, channel=channel)
        return found

    def _sent(
        self, row: VerificationRow, account: str, to: str, channel: Channel, now: float,
        message_id: str | None, call_id: str | None,
    ) -> VerificationRow:  # fmt: skip
        self.store.sent(row.id, to, prefix_of(to), now, message_id=message_id, call_id=call_id)
        self._bill(row, channel, now)
        found = self.store.get(row.id, account)
        assert found is not None
        return found

    def _bill(self, row: VerificationRow, channel: str, now: float) -> None:
        sends = (self.store.get(row.id, row.account) or row).sends
        event = {
            "id": f"verification:{row.id}:{sends}",
            "account": row.account,
            "kind": "verification",
            "to": row.to_addr,
            "channel": channel,
            "requested_at": _iso(now),
        }
        price, _ = quote(self.conn, self.tariffs, event)
        if price is not None and row.price_eur is None:
            self.store.set_price(row.id, str(price))
        if self.usage is not None:
            self.usage.record(event)

    # ---- check / cancel ----------------------------------------------------------------

    async def check(self, account: str, verification_id: str, code: str) -> VerificationRow:
        return await self.db.run(lambda: self._check(account, verification_id, code))

    async def cancel(self, account: str, verification_id: str) -> VerificationRow:
        return await self.db.run(lambda: self._cancel(account, verification_id))

    async def get(self, account: str, verification_id: str) -> VerificationRow:
        return await self.db.run(lambda: self._get(account, verification_id))

    def _check(self, account: str, verification_id: str, code: str) -> VerificationRow:
        """Raise NotFound when there is nothing to check: unknown, another account's,
        approved, canceled, expired, or out of checks (Twilio answers 404 there too)."""
        now = self.clock()
        counted = self.store.count_check(verification_id, account, now, self.policy.max_checks)
        if counted is None:
            row = self.store.get(verification_id, account)
            if row is not None and row.status == "pending" and row.expires_at <= now:
                self.store.set_status(verification_id, "expired")
            raise NotFound(verification_id)
        checks, mac = counted
        matched = code.isdigit() and code_matches(self.secret, verification_id, code, mac)
        status = after_check(matched, checks, self.policy)
        if status != "pending":
            self.store.set_status(verification_id, status)
            if status == "approved":
                self._codes.pop(verification_id, None)
        log.info("verify.checked", verification_id=verification_id, status=status, checks=checks)
        row = self.store.get(verification_id, account)
        assert row is not None
        return row

    def _cancel(self, account: str, verification_id: str) -> VerificationRow:
        row = self._get(account, verification_id)
        if row.status == "pending":
            self.store.set_status(verification_id, "canceled")
            self._codes.pop(verification_id, None)
        return self._get(account, verification_id)

    def _get(self, account: str, verification_id: str) -> VerificationRow:
        row = self.store.get(verification_id, account)
        if row is None:
            raise NotFound(verification_id)
        if row.status == "pending" and row.expires_at <= self.clock():
            self.store.set_status(row.id, "expired")
            row.status = "expired"
        return row

    def _forget_expired(self, now: float) -> None:
        for vid in [v for v, (_, exp) in self._codes.items() if exp <= now]:
            del self._codes[vid]

    def resource(self, row: VerificationRow) -> dict[str, Any]:
        return {
            "id": row.id,
            "to": row.to_addr,
            "channel": row.channel,
            "locale": row.locale,
            "status": row.status,
            "sends": row.sends,
            "checks_left": max(0, self.policy.max_checks - row.checks),
            "created_at": _iso(row.created_at),
            "expires_at": _iso(row.expires_at),
            "price_eur": row.price_eur,
            "message_id": row.message_id,
            "call_id": row.call_id,
        }

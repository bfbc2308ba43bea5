"""What the messaging service's jobs share: its settings, the error a refused message raises,
the ports it needs from the rest of the node, and the state each job reads (declared once
here, set by `Messaging.__init__`)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from flexvoice.calls import WebhookSender
from flexvoice.messaging.commit import GroupCommit
from flexvoice.messaging.early import EarlyReceipts
from flexvoice.messaging.gateway import Gateway
from flexvoice.messaging.lookups import Lookups, NumberOwner
from flexvoice.messaging.store import MessageRow, MessageStore
from flexvoice.messaging.text import DATA_CODING, Part, split
from flexvoice.metering.tariffs import TariffBook
from flexvoice.storage.engine import Connection

MASK = "#"  # stands for the digits of a verification code in what is stored


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
    window: int = 32  # parts in flight at once
    accounts: Mapping[str, AccountSettings] = field(default_factory=dict)

    def account(self, name: str) -> AccountSettings:
        return self.accounts.get(name, AccountSettings())

    def gateway_for(self, account: str) -> str | None:
        return self.account(account).gateway or self.default_gateway


@functools.lru_cache(maxsize=1024)  # a message shows the same times several times
def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Context:
    """The state the jobs (accept, queue, incoming) share; `Messaging` sets it."""

    conn: Connection
    store: MessageStore
    commits: GroupCommit
    lookups: Lookups
    gateways: dict[str, Gateway]
    settings: Settings
    numbers: NumberOwner | None
    usage: UsageRecorder | None
    webhooks: WebhookSender | None
    tariffs: TariffBook | None
    clock: Callable[[], float]
    _wake: asyncio.Event
    _in_flight: dict[tuple[str, int], asyncio.Task[None]]  # parts being submitted now
    _down: dict[str, tuple[int, float]]  # gateway -> (failures, retry at)
    _secret_bodies: dict[str, str]  # message id -> body with a code, memory only
    _concat: dict[tuple[str, str, int], dict[int, str]]
    _after_commit: list[MessageRow]
    _early: EarlyReceipts  # receipts read before their part was recorded

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
            "created_at": iso(row.created_at),
            "updated_at": iso(row.updated_at),
            "sent_at": iso(row.sent_at),
        }

    def parts_for(self, gateway: str, body: str, reference: int) -> tuple[str, list[Part], int]:
        """(encoding, parts to submit, segments billed). A whole-text gateway (SIP) takes one
        part holding all the text (as UCS-2: any character fits); the bill counts the SMS
        segments the network makes of it, by the same rules."""
        encoding, parts = split(body, reference)
        found = self.gateways.get(gateway)
        if found is not None and found.whole_text:
            return encoding, [Part(body.encode("utf-16-be"), DATA_CODING["UCS-2"], 0)], len(parts)
        return encoding, parts, len(parts)

    def _flush(self) -> None:
        """Status callbacks of the rows changed by the last commit (the webhook queue
        writes through another connection: after our commit, not inside it)."""
        done, self._after_commit = self._after_commit, []
        for row in done:
            if self.webhooks is None or not row.status_callback:
                continue
            self.webhooks.enqueue(
                row.account,
                row.status_callback,
                row.status,
                {"event": row.status, "message": self.resource(row)},
            )

"""The messaging service: checks and stores outbound messages (accept.py), runs the persistent
queue over the gateways (sending.py), takes receipts and inbound messages (incoming.py). One
`sms` usage event per message; status callbacks once committed. The clock is injected."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from flexvoice.calls import WebhookSender
from flexvoice.messaging.accept import Accepting
from flexvoice.messaging.commit import GroupCommit
from flexvoice.messaging.context import (
    AccountSettings,
    MessageRefused,
    Settings,
    UsageRecorder,
)
from flexvoice.messaging.early import EarlyReceipts
from flexvoice.messaging.gateway import Gateway
from flexvoice.messaging.incoming import Receiving
from flexvoice.messaging.lookups import Lookups, NumberOwner
from flexvoice.messaging.store import MessageStore
from flexvoice.metering.tariffs import TariffBook
from flexvoice.storage.engine import Connection

__all__ = ["AccountSettings", "MessageRefused", "Messaging", "Settings", "UsageRecorder"]


class Messaging(Receiving, Accepting):
    def __init__(
        self,
        conn: Connection,
        gateways: Mapping[str, Gateway],
        settings: Settings,
        *,
        numbers: NumberOwner | None = None,
        usage: UsageRecorder | None = None,
        webhooks: WebhookSender | None = None,
        tariffs: TariffBook | None = None,
        clock: Callable[[], float] = time.time,
        cache_numbers: bool = True,
        node: str = "local",
    ):
        self.conn = conn
        self.store = MessageStore(conn, node)
        self.commits = GroupCommit(conn, after=self._flush)
        self.lookups = Lookups(conn, self.store, numbers, cache_numbers, tariffs)
        self.gateways = dict(gateways)
        self.settings = settings
        self.numbers = numbers
        self.usage = usage
        self.webhooks = webhooks
        self.tariffs = tariffs
        self.clock = clock
        self._wake = asyncio.Event()
        self._in_flight = {}
        self._down = {}
        self._secret_bodies = {}
        self._concat = {}
        self._after_commit = []
        self._early = EarlyReceipts()

"""What a flow needs from the rest of the node (`FlowDeps`), as protocols and functions handed
in by the node's flows component (flexvoice.node.flows) or by a test."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from flexvoice.callcontrol import CallObserver
from flexvoice.clock import utc_now
from flexvoice.conference.service import ConferenceService
from flexvoice.recordings.service import RecordingService
from flexvoice.recordings.store import RecordingStore
from flexvoice.storage.sqlite import connect


class UsageSink(Protocol):
    """Where usage events go (flexvoice.metering.sink.UsageSink implements it)."""

    def record(self, event: dict[str, Any]) -> None: ...


class SmsSender(Protocol):
    """The messaging service as a flow sees it (flexvoice.node.flows adapts it)."""

    def send_sms(self, account: str, from_addr: str, to: str, body: str) -> tuple[str, int]:
        """Queue one SMS; (message id, segments). Raise StepFailed saying why not."""
        ...


class WebhookClient(Protocol):
    async def post_json(
        self, url: str, payload: dict[str, Any], timeout: float, headers: dict[str, str]
    ) -> Any:
        """POST JSON, return the decoded JSON answer; raise StepFailed on any failure."""


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


async def maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


@dataclass
class FlowDeps:
    """What the runtime needs from the rest of the node; every part is optional in tests.

    Lookups may be plain functions or coroutines: `account_for(number) -> account | None`,
    `prices_for(account, kind) -> whether the account's tariff prices usage of that kind`,
    `continuity_for(e164) -> (forward_to, active) | None`,
    `draft_for(flow name, caller) -> a validated Flow to run instead | None` (the designer's
    test callers hear the draft)."""

    usage_sink: UsageSink | None = None
    account_for: Callable[[str], Any] | None = None
    prices_for: Callable[[str, str], Any] | None = None
    continuity_for: Callable[[str], Any] | None = None
    draft_for: Callable[[str, str], Any] | None = None
    webhooks: WebhookClient | None = None
    sms: SmsSender | None = None
    observer: CallObserver | None = None
    clock: Callable[[], datetime] = utc_now
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    recordings_dir: Path = Path("var/recordings")
    tts_cache_dir: Path = Path("var/tts")
    max_steps: int = 1000  # a flow that loops this often without ending is stopped
    # Recording rows, usage and webhooks (the node's, from flexvoice.recordings.node); when
    # none is given, `recording_service()` makes one that keeps its rows in memory.
    recordings: RecordingService | None = None
    conferences: ConferenceService | None = None  # rooms of the `conference` verb

    def recording_service(self) -> RecordingService:
        if self.recordings is None:
            self.recordings = RecordingService(
                RecordingStore(connect(":memory:")),
                self.recordings_dir,
                usage_sink=self.usage_sink,
                clock=self.clock,
            )
        return self.recordings

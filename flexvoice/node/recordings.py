"""Recordings and conference rooms as node components, after the API's (its webhooks and call
registry) and before the pool's (they outlive the drain, so recordings closing then finish)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from aiohttp import web

from flexvoice.accounts import recording_retention_days
from flexvoice.api.pricing import TariffPricer
from flexvoice.appkeys import (
    CALLS,
    CONFERENCES,
    CONFIG,
    DB,
    DIALER,
    FLOWS,
    POOL,
    RECORDINGS,
    SHARED_DB,
    TARIFFS,
    USAGE_SINK,
    WEBHOOKS,
    need,
)
from flexvoice.callcontrol import CallLeg
from flexvoice.conference.service import ConferenceService
from flexvoice.flows.runtime import FlowRuntime
from flexvoice.logs import get_logger
from flexvoice.recordings.service import PriceUsage, RecordingService
from flexvoice.recordings.store import RecordingStore
from flexvoice.sip.beep import beep_file
from flexvoice.sip.links import LinkFailed, PoolLinker
from flexvoice.storage.engine import is_postgres

log = get_logger(__name__)

RETENTION_INTERVAL_S = 3600.0  # how often old recordings are looked for


async def recordings_component(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    need(app, DB, "database_component", "recordings_component")
    # Accounts (retention), tariffs and the recordings' rows live in the shared store; with
    # several nodes (PostgreSQL) each row says which node made it.
    shared = app[SHARED_DB]
    store = RecordingStore(shared, node=cfg.node_name if is_postgres(shared) else None)
    calls = app.get(CALLS)
    tariffs = app.get(TARIFFS)

    def callback_for(call_id: str) -> str | None:
        call = calls.get(call_id) if calls is not None else None
        return call.status_callback if call is not None else None

    service = RecordingService(
        store,
        cfg.path(cfg.storage.recordings),
        usage_sink=app.get(USAGE_SINK),
        webhooks=app.get(WEBHOOKS),
        callback_for=callback_for,
        price_usage=_pricing(TariffPricer(shared, tariffs)) if tariffs is not None else None,
        retention_days_for=lambda account: recording_retention_days(shared, account),
    )
    repaired = service.repair_open()
    if repaired:
        log.warning("recordings.recovered", count=len(repaired), ids=[r.id for r in repaired])
    runtime = app.get(FLOWS)
    if isinstance(runtime, FlowRuntime):  # (API tests stand in for the runtime)
        runtime.deps.recordings = service
    if calls is not None:
        calls.recordings_for = lambda account, call_id: [
            r.resource() for r in store.list(account, call_id=call_id)
        ]
    app[RECORDINGS] = service
    dialer = app.get(DIALER)
    if dialer is not None:
        dialer.recordings = service
    retention = asyncio.create_task(service.retention_forever(RETENTION_INTERVAL_S))
    try:
        yield
    finally:
        retention.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await retention
        await service.drain(5.0)


def _pricing(pricer: TariffPricer) -> PriceUsage:
    def price(account: str, event: dict[str, Any]) -> tuple[int, Decimal | None, str | None]:
        priced = pricer.price_usage({**event, "account": account})
        return priced.billable_seconds, priced.price_eur, priced.unpriced_reason

    return price


class NodeLinker:
    """The pool's linker, found when the first link is needed (the pool starts after us)."""

    def __init__(self, app: web.Application):
        self.app = app
        self.linker: PoolLinker | None = None

    def _get(self) -> PoolLinker | None:
        pool = self.app.get(POOL)
        if self.linker is None and pool is not None:
            self.linker = PoolLinker(pool)
        return self.linker

    def free_slots(self, placement: str) -> int:
        linker = self._get()
        return linker.free_slots(placement) if linker is not None else 0

    def relays(self) -> dict[str, int]:
        linker = self._get()
        return linker.relays() if linker is not None else {}

    def stopping(self) -> bool:
        linker = self._get()
        return linker.stopping() if linker is not None else False

    def incarnation(self, placement: str) -> float | None:
        linker = self._get()
        return linker.incarnation(placement) if linker is not None else None

    async def link(self, parent: str, child: str) -> tuple[CallLeg, CallLeg]:
        linker = self._get()
        if linker is None:
            raise LinkFailed("no SIP worker pool on this node")
        return await linker.link(parent, child)


async def conferences_component(app: web.Application) -> AsyncIterator[None]:
    service = ConferenceService(
        usage_sink=app.get(USAGE_SINK),
        webhooks=app.get(WEBHOOKS),
        beep=beep_file,
        linker=NodeLinker(app),
    )
    runtime = app.get(FLOWS)
    if isinstance(runtime, FlowRuntime):
        runtime.deps.conferences = service
    app[CONFERENCES] = service
    yield

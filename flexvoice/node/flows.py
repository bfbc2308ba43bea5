"""The flow runtime as a node component.

The inbound-call router calls `start_call` for each call to a number with a flow, the API for
the calls it places. The runtime gets the node's parts as plain functions in a FlowDeps (usage
sink, the number registry's lookups, whether the account's tariff prices a usage kind); a test
may publish its own FlowDeps under FLOW_DEPS first, and the runtime fills in only the rest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from aiohttp import web

from flexvoice.accounts import get_account
from flexvoice.appkeys import (
    CONFIG,
    FLOW_DEPS,
    FLOWS,
    MESSAGING,
    NUMBERS,
    SHARED_DB,
    TARIFFS,
    USAGE_SINK,
)
from flexvoice.flows.base import StepFailed
from flexvoice.flows.deps import FlowDeps
from flexvoice.flows.runtime import FlowRuntime
from flexvoice.messaging.service import MessageRefused
from flexvoice.metering.tariffs import TariffBook
from flexvoice.numbers import NumberRegistry
from flexvoice.storage.engine import Connection


async def flows_component(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    deps = app.get(FLOW_DEPS) or FlowDeps()
    # Each part is optional: a node without metering records no usage, one without numbers
    # (flow tests) runs flows without Voice Continuity or per-account tariffs.
    deps.usage_sink = deps.usage_sink or app.get(USAGE_SINK)
    numbers = app.get(NUMBERS)
    if numbers is not None:
        deps.continuity_for = deps.continuity_for or numbers.continuity_for
        deps.account_for = deps.account_for or _account_of(numbers)
        if SHARED_DB in app and TARIFFS in app:
            deps.prices_for = deps.prices_for or _prices_of(app[SHARED_DB], app[TARIFFS])
    deps.sms = deps.sms or NodeSms(app)
    deps.recordings_dir = cfg.path(cfg.storage.recordings)
    deps.tts_cache_dir = cfg.path("var/tts")
    runtime = FlowRuntime(cfg.path(cfg.paths.flows), cfg.path(cfg.paths.prompts), deps)
    await runtime.start()
    app[FLOWS] = runtime
    try:
        yield
    finally:
        await runtime.stop()


class NodeSms:
    """The `sms` step's way to the messaging service, found when a step runs (messaging
    starts after the flow runtime)."""

    def __init__(self, app: web.Application):
        self.app = app

    async def send_sms(self, account: str, from_addr: str, to: str, body: str) -> tuple[str, int]:
        messaging = self.app.get(MESSAGING)
        if messaging is None:
            raise StepFailed("messaging is not running on this node")
        if not account:
            raise StepFailed("the call belongs to no account: nobody to bill the SMS to")
        try:
            row = await messaging.send(account, from_addr, to, body, origin="flow")
        except MessageRefused as exc:
            raise StepFailed(str(exc)) from None
        return row.id, row.segments


def _account_of(numbers: NumberRegistry) -> Callable[[str], str | None]:
    def account_for(number: str) -> str | None:
        route = numbers.lookup(number)
        return route.account if route is not None else None

    return account_for


def _prices_of(conn: Connection, tariffs: TariffBook) -> Callable[[str, str], bool]:
    """Whether the account's tariff prices a usage kind (e.g. `reroute`), read per call."""

    def prices_for(account: str, kind: str) -> bool:
        found = get_account(conn, account)
        tariff = tariffs.get(found.tariff) if found is not None else None
        return tariff is not None and tariff.prices(kind, datetime.now(UTC))

    return prices_for

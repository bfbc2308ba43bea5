"""The flow runtime as a component of `flexvoice serve` (an aiohttp cleanup_ctx).

Other components reach the runtime through `app[FLOW_RUNTIME]` (the SIP layer calls
`start_call` for each inbound call; the API for calls it places). Components that start
earlier may put a `FlowDeps` in `app[FLOW_DEPS]` (usage sink, number registry lookups,
observer); the runtime then uses it instead of the defaults.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from flexvoice.accounts import get_account
from flexvoice.flows.base import StepFailed
from flexvoice.flows.interpreter import FlowDeps
from flexvoice.flows.runtime import FlowRuntime
from flexvoice.messaging.node import MESSAGING
from flexvoice.messaging.service import MessageRefused
from flexvoice.server import CONFIG
from flexvoice.storage.sqlite import connect

if TYPE_CHECKING:
    from flexvoice.sip.node import NumberLookup

FLOW_RUNTIME = web.AppKey("flow_runtime", FlowRuntime)
FLOW_DEPS = web.AppKey("flow_deps", FlowDeps)


async def flows_component(app: web.Application) -> AsyncIterator[None]:
    from flexvoice.metering.sink import USAGE_SINK
    from flexvoice.sip.node import NUMBERS

    cfg = app[CONFIG]
    deps = app.get(FLOW_DEPS) or FlowDeps()
    conn: sqlite3.Connection | None = None
    deps.usage_sink = deps.usage_sink or app.get(USAGE_SINK)
    numbers = app.get(NUMBERS)
    if numbers is not None:  # the number registry (flexvoice.sip.node:numbers_component)
        deps.continuity_for = deps.continuity_for or numbers.continuity_for
        deps.account_for = deps.account_for or _account_of(numbers)
        conn = connect(cfg.path(cfg.storage.database))
        deps.tariff_for = deps.tariff_for or _tariff_of(conn)
    deps.sms = deps.sms or NodeSms(app)
    deps.recordings_dir = cfg.path(cfg.storage.recordings)
    deps.tts_cache_dir = cfg.path("var/tts")
    runtime = FlowRuntime(cfg.path(cfg.paths.flows), cfg.path(cfg.paths.prompts), deps)
    await runtime.start()
    app[FLOW_RUNTIME] = runtime
    try:
        yield
    finally:
        await runtime.stop()
        if conn is not None:
            conn.close()


class NodeSms:
    """The `sms` step's way to the messaging service, found when a step runs (messaging
    starts after the flow runtime)."""

    def __init__(self, app: web.Application):
        self.app = app

    def send_sms(self, account: str, from_addr: str, to: str, body: str) -> tuple[str, int]:
        messaging = self.app.get(MESSAGING)
        if messaging is None:
            raise StepFailed("messaging is not running on this node")
        if not account:
            raise StepFailed("the call belongs to no account: nobody to bill the SMS to")
        try:
            row = messaging.send(account, from_addr, to, body, origin="flow")
        except MessageRefused as exc:
            raise StepFailed(str(exc)) from None
        return row.id, row.segments


def _account_of(numbers: NumberLookup) -> Callable[[str], str | None]:
    def account_for(number: str) -> str | None:
        route = numbers.lookup(number)
        return route.account if route is not None else None

    return account_for


def _tariff_of(conn: sqlite3.Connection) -> Callable[[str], str | None]:
    """The account's tariff name (the VMS tariff bills reroutes), read per call."""

    def tariff_for(account: str) -> str | None:
        found = get_account(conn, account)
        return found.tariff if found is not None else None

    return tariff_for

"""The flow runtime as a node component.

The inbound-call router calls `start_call` for each call to a number with a flow, the API for
the calls it places. The runtime gets the node's parts as plain functions in a FlowDeps (usage
sink, the number registry's lookups, the account's tariff name); a test may publish its own
FlowDeps under FLOW_DEPS first, and the runtime then fills in only what it left empty.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from flexvoice.accounts import get_account
from flexvoice.appkeys import CONFIG, DB, FLOW_DEPS, FLOWS, NUMBERS, USAGE_SINK
from flexvoice.flows.interpreter import FlowDeps
from flexvoice.flows.runtime import FlowRuntime
from flexvoice.numbers import NumberRegistry


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
        if DB in app:
            deps.tariff_for = deps.tariff_for or _tariff_of(app[DB])
    deps.recordings_dir = cfg.path(cfg.storage.recordings)
    deps.tts_cache_dir = cfg.path("var/tts")
    runtime = FlowRuntime(cfg.path(cfg.paths.flows), cfg.path(cfg.paths.prompts), deps)
    await runtime.start()
    app[FLOWS] = runtime
    try:
        yield
    finally:
        await runtime.stop()


def _account_of(numbers: NumberRegistry) -> Callable[[str], str | None]:
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

"""The number registry as a node component: synced from sip/numbers.yaml before any call can
arrive (a bad file stops start-up with file:line:col messages). The SIP routing, the flow
runtime and the API all use this one registry."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from flexvoice.appkeys import CONFIG, NUMBERS, SHARED_DB, USAGE_SINK, need
from flexvoice.numbers import NumberRegistry


async def numbers_component(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    conn = need(app, SHARED_DB, "database_component", "numbers_component")
    # Optional: a node built without metering (API tests) records no number usage.
    registry = NumberRegistry(conn, usage_sink=app.get(USAGE_SINK))
    registry.sync_from_yaml(cfg.path(cfg.sip.numbers))
    app[NUMBERS] = registry
    yield

"""The usage sink as a node component: everything started after it records usage events."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from flexvoice.appkeys import CONFIG, TARIFFS, USAGE_SINK, need
from flexvoice.metering.sink import UsageSink
from flexvoice.metering.store import UsageStore
from flexvoice.storage.open import open_shared, spool_dir


async def usage_component(app: web.Application) -> AsyncIterator[None]:
    """The usage sink, spooling beside this node's own database file; it imports into the
    shared store (SQLite, or PostgreSQL for several nodes) on a worker thread, with a
    connection of its own."""
    cfg = app[CONFIG]
    tariffs = need(app, TARIFFS, "tariffs_component", "usage_component")
    spool = spool_dir(cfg)
    sink = UsageSink(spool, lambda: UsageStore(open_shared(cfg), tariffs))
    await sink.start()
    app[USAGE_SINK] = sink
    try:
        yield
    finally:
        await sink.stop()

"""The usage sink as a node component: everything started after it records usage events."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from flexvoice.appkeys import CONFIG, TARIFFS, USAGE_SINK, need
from flexvoice.metering.sink import UsageSink
from flexvoice.metering.store import UsageStore
from flexvoice.storage.sqlite import connect


async def usage_component(app: web.Application) -> AsyncIterator[None]:
    """The usage sink, spooling under the database's folder; it imports on a worker thread,
    with a connection of its own."""
    cfg = app[CONFIG]
    tariffs = need(app, TARIFFS, "tariffs_component", "usage_component")
    db = cfg.path(cfg.storage.database)
    sink = UsageSink(db.parent / "usage-spool", lambda: UsageStore(connect(db), tariffs))
    await sink.start()
    app[USAGE_SINK] = sink
    try:
        yield
    finally:
        await sink.stop()

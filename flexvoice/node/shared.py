"""Components for what several parts of the node share, loaded once: the database connections
of the event loop (this node's SQLite file, and the shared store: the same file on one node,
PostgreSQL for several), the tariff book and the SIP trunks.

The connection is used by the number registry, the flow runtime's tariff lookups and the API,
all on the event loop thread and never across an await inside a transaction. Work done on
other threads opens its own connection (the usage sink's importer, the API's usage
statements), as SQLite wants. The file's WAL checkpoints run in a thread of their own
(flexvoice.storage.checkpoint).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from flexvoice.appkeys import CONFIG, DB, SHARED_DB, SHARED_POOL, TARIFFS, TRUNKS
from flexvoice.logs import get_logger
from flexvoice.metering.tariffs import load_tariffs
from flexvoice.sip.trunks import load_trunks
from flexvoice.storage import postgres
from flexvoice.storage.checkpoint import Checkpointer, loop_connection_without_checkpoints
from flexvoice.storage.engine import settle
from flexvoice.storage.open import local_path
from flexvoice.storage.sqlite import connect

log = get_logger(__name__)


async def database_component(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    url = cfg.storage.shared_url
    # The shared store first: an unreachable PostgreSQL stops start-up with one line.
    shared = postgres.connect(url) if url is not None else None
    conn = connect(local_path(cfg))
    # The loop's connection never checkpoints: a thread does (flexvoice.storage.checkpoint).
    loop_connection_without_checkpoints(conn)
    app[DB] = conn
    app[SHARED_DB] = shared if shared is not None else conn
    if url is not None:
        app[SHARED_POOL] = postgres.PgPool(url)
    checkpointer = Checkpointer(local_path(cfg))
    checkpointer.start()
    try:
        yield
    finally:
        settle()  # the loop's last group of writes (calls ended at shutdown): a close rolls back
        checkpointer.stop()
        conn.close()
        if shared is not None:
            shared.close()
            app[SHARED_POOL].close()


async def tariffs_component(app: web.Application) -> AsyncIterator[None]:
    """One tariff book for the node: a broken tariff file stops start-up, positioned."""
    cfg = app[CONFIG]
    app[TARIFFS] = load_tariffs(cfg.path(cfg.paths.tariffs))
    yield


async def trunks_component(app: web.Application) -> AsyncIterator[None]:
    """sip/trunks.yaml, for the edge (routes to trunks) and the pool (the default trunk)."""
    cfg = app[CONFIG]
    trunks = load_trunks(cfg.path(cfg.sip.trunks))
    for warning in trunks.warnings:
        log.warning("trunks.warning", problem=str(warning))
    app[TRUNKS] = trunks
    yield

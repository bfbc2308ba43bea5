"""The SIP edge as a part of `flexvoice serve` (an aiohttp cleanup_ctx component).

Starts Kamailio when the node runs with its edge (`sip.edge.enabled` and no `--no-edge`), keeps
`/healthz` (`NodeStatus.edge_up`) current, restarts Kamailio with back-off when it dies, and
stops it on shutdown.

Order in `flexvoice.server.COMPONENTS`: put this component *before* the worker pool. Then the
edge stops *after* the pool has drained, so the BYEs of calls that are still finishing reach
their workers; the pool registers `app[EDGE].set_worker_state` in its `on_worker_state` hooks.
If the pool happens to start first, this component registers the hook itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from flexvoice.errors import UserError
from flexvoice.logs import get_logger
from flexvoice.server import CONFIG, OPTIONS, STATUS, NodeStatus
from flexvoice.sip.addresses import worker_addresses
from flexvoice.sip.edge import Edge
from flexvoice.sip.trunks import load_trunks

log = get_logger(__name__)

EDGE = web.AppKey("sip_edge", Edge)

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0  # a Kamailio that ran this long resets the back-off


async def edge_component(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    status = app[STATUS]
    if not (app[OPTIONS].edge and cfg.sip.edge.enabled):
        status.edge_up = False
        yield
        return
    trunks = load_trunks(cfg.path(cfg.sip.trunks))
    for warning in trunks.warnings:
        log.warning("trunks.warning", problem=str(warning))
    edge = Edge(cfg, worker_addresses(cfg), trunks)
    pool = _pool(app)
    if pool is not None:  # the pool started first: tell the edge what it knows already
        for worker in getattr(pool, "workers", []):
            edge.set_worker_state(worker.index, bool(worker.up))
    await edge.start()
    app[EDGE] = edge
    status.edge_up = True
    if pool is not None:
        pool.on_worker_state.append(edge.set_worker_state)
    keeper = asyncio.get_running_loop().create_task(keep_running(edge, status))
    try:
        yield
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        await edge.stop()
        status.edge_up = False


def _pool(app: web.Application) -> Any:
    try:
        from flexvoice.sip.node import POOL
    except ImportError:  # the pool lives in another issue's module
        return None
    return app.get(POOL)


async def keep_running(edge: Edge, status: NodeStatus, backoff: float = BACKOFF_FIRST) -> None:
    """Restart Kamailio whenever it exits on its own, waiting longer after each quick death."""
    delay = backoff
    while True:
        started = time.monotonic()
        rc = await edge.wait()
        if edge.stopping:
            return
        status.edge_up = False
        if time.monotonic() - started > STABLE_AFTER:
            delay = backoff
        log.error("edge.died", rc=rc, restart_in=f"{delay:g}s", log=str(edge.log_file))
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)
            try:
                await edge.start()
            except UserError as exc:
                log.error("edge.restart_failed", error=str(exc), retry_in=f"{delay:g}s")
                continue
            break
        edge.restarts += 1
        status.edge_up = True
        log.info("edge.restarted", restarts=edge.restarts, pid=edge.pid)

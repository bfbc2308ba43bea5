"""The SIP edge as a node component.

Starts Kamailio when the node runs with its edge (`sip.edge.enabled` and no `--no-edge`), keeps
`/healthz` (`NodeStatus.edge_up`) current, restarts Kamailio with back-off when it dies, and
stops it on shutdown.

It starts *before* the worker pool, so it stops *after* the pool has drained and the BYEs of
calls that are still finishing reach their workers; the pool component registers
`app[EDGE].set_worker_state` in the pool's `on_worker_state` hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from aiohttp import web

from flexvoice.appkeys import CONFIG, EDGE, OPTIONS, STATUS, TRUNKS, need
from flexvoice.errors import UserError
from flexvoice.logs import get_logger
from flexvoice.node.status import NodeStatus
from flexvoice.sip.addresses import relay_addresses, worker_addresses
from flexvoice.sip.edge import Edge

log = get_logger(__name__)

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0  # a Kamailio that ran this long resets the back-off


async def edge_component(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    status = app[STATUS]
    if not (app[OPTIONS].edge and cfg.sip.edge.enabled) or cfg.cluster.edge == "shared":
        # With a shared edge (`flexvoice edge serve`), the cluster component reports it.
        status.edge_up = False
        yield
        return
    trunks = need(app, TRUNKS, "trunks_component", "edge_component")
    edge = Edge(cfg, worker_addresses(cfg), trunks, relays=relay_addresses(cfg))
    await edge.start()
    app[EDGE] = edge
    status.edge_up = True
    keeper = asyncio.get_running_loop().create_task(keep_running(edge, status))
    try:
        yield
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        await edge.stop()
        status.edge_up = False


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

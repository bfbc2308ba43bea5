"""The SIP worker pool as a node component: media workers behind the edge (or, with
`--no-edge`, one worker on the public SIP port), each incoming call handed to the inbound
router, each ended leg's usage event to the usage sink, and a drain on shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from flexvoice.appkeys import (
    CALLS,
    CLUSTER,
    CONFIG,
    EDGE,
    FLOWS,
    HEARTBEAT,
    MESSAGE_TRANSPORT,
    NUMBERS,
    OPTIONS,
    ORIGINATOR,
    POOL,
    STATUS,
    TRUNKS,
    USAGE_SINK,
    need,
)
from flexvoice.config import Config
from flexvoice.errors import UserError
from flexvoice.logs import get_logger
from flexvoice.node.inbound_router import InboundRouter
from flexvoice.node.messaging import sip_inbound
from flexvoice.sip.addresses import edge_proxy_uri, worker_addresses, worker_count
from flexvoice.sip.leg import SipLeg
from flexvoice.sip.messages import SipMessenger
from flexvoice.sip.originate import PoolOriginator
from flexvoice.sip.pool import PoolSettings, WorkerPool
from flexvoice.sip.trunks import Trunk
from flexvoice.sip.usage import call_usage

log = get_logger(__name__)


def pool_settings(cfg: Config, edge: bool, trunk: Trunk | None) -> PoolSettings:
    w = cfg.sip.workers
    if not edge:
        # Development: one worker on the public SIP port, no Kamailio in front.
        return PoolSettings(
            count=1,
            host=cfg.sip.edge.host,
            base_port=cfg.sip.edge.port,
            max_calls=w.max_calls,
            restart_backoff=w.restart_backoff,
            rtp_base=w.rtp_base,
            **trunk_settings(trunk),
        )
    if w.relays and cfg.cluster.enabled and cfg.cluster.edge == "shared":
        raise UserError(
            "sip.workers.relays: a shared edge (cluster.edge: shared) does not know relay "
            "workers yet; set sip.workers.relays to 0 or give this node its own edge"
        )
    return PoolSettings(
        count=worker_count(cfg) + w.relays,
        relays=w.relays,
        host=w.host,
        base_port=w.base_port,
        max_calls=w.max_calls,
        restart_backoff=w.restart_backoff,
        proxy=edge_proxy_uri(cfg),
        rtp_base=w.rtp_base,
        media_host=w.media_address,
        **trunk_settings(trunk),
    )


def trunk_settings(trunk: Trunk | None) -> dict[str, Any]:
    if trunk is None:
        return {}
    return {
        "trunk": trunk.uri.removeprefix("sip:"),
        "trunk_user": trunk.username,
        "trunk_password": trunk.password,
    }


async def pool_component(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    edge = app[OPTIONS].edge and cfg.sip.edge.enabled
    status = app[STATUS]
    # The trunk calls to E.164 numbers go to (sip/trunks.yaml `default_outbound`).
    trunk = need(app, TRUNKS, "trunks_component", "pool_component").default
    router = InboundRouter(
        numbers=need(app, NUMBERS, "numbers_component", "pool_component"),
        # Optional: without a flow runtime, numbers with a flow get 480 (logged).
        flows=app.get(FLOWS),
        prompts_dir=cfg.path(cfg.paths.prompts),
        # Optional: without the API, inbound calls are not listed in /v1/calls.
        calls=app.get(CALLS),
    )
    settings = pool_settings(cfg, edge, trunk)
    pool = WorkerPool(settings, router)
    if trunk is not None:
        pool.caller_id_for = trunk.caller_id_for
    edge_process = app.get(EDGE)
    cluster = app.get(CLUSTER)
    # Relays (the pool's last workers) take no callers: the edge pings them, no state pushed.
    callers = settings.count - settings.relays
    if edge_process is not None:  # the edge started first (it stops after the pool drained)
        push, lost = edge_process.set_worker_state, edge_process.worker_lost
        pool.on_worker_state.append(lambda i, up: push(i, up) if i < callers else None)
        pool.on_worker_lost.append(lambda i: lost(i) if i < callers else None)  # carriers' BYE
    elif edge and not (cluster is not None and cluster.shared_edge):
        need(app, EDGE, "edge_component", "pool_component")
    if cluster is not None:  # the shared edge learns the workers' states through Redis
        uris = {w.index: w.uri for w in worker_addresses(cfg)}
        pool.on_worker_state.append(
            lambda i, up: cluster.worker_state(uris[i], up) if i in uris else None
        )
        if cluster.shared_edge:
            pool.on_worker_lost.append(lambda i: cluster.worker_lost(uris[i]))
    status.workers_total = settings.count

    def track(_index: int, _up: bool) -> None:
        status.workers_up = pool.up

    pool.on_worker_state.append(track)
    sink = need(app, USAGE_SINK, "usage_component", "pool_component")

    def record_usage(leg: SipLeg) -> None:
        event = call_usage(leg)
        if event is not None:
            sink.record(event)

    pool.leg_ended_hooks.append(record_usage)
    heartbeat = app.get(HEARTBEAT)
    if heartbeat is not None:  # after the usage event is written: the row is no longer needed
        pool.leg_ended_hooks.append(heartbeat.forget)
    if not edge:
        log.warning(
            "sip.no_edge",
            note="development mode: no Kamailio edge; one worker takes SIP itself (4 calls)",
            listen=f"{settings.host}:{settings.base_port}",
        )
    await pool.start()
    app[POOL] = pool
    messenger = SipMessenger(pool)  # SIP MESSAGE, both ways, through the edge

    async def message_in(from_user: str, to_user: str, text: str) -> None:
        await sip_inbound(app, from_user, to_user, text)

    messenger.on_inbound = message_in
    app[MESSAGE_TRANSPORT] = messenger
    app[ORIGINATOR] = PoolOriginator(pool, trunk)
    try:
        yield
    finally:
        status.draining = True
        if edge_process is not None:
            # New INVITEs get 503 at the edge; in-dialog requests still reach their worker.
            for worker in pool.workers:
                edge_process.set_worker_state(worker.index, False)
        if cluster is not None:
            for worker in pool.workers:
                cluster.worker_state(uris[worker.index], False)
            await cluster.settled()
        await pool.stop(grace=cfg.sip.workers.drain_grace)
        status.workers_up = 0

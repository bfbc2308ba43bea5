"""This node in a cluster (`cluster.enabled`), as a node component: its Redis connection
(named after the node, so a dead node is seen at once), the calls it holds, its workers for
the shared edge, its heartbeat, and the closing of a lost node's calls (flexvoice.cluster).

Placed after the heartbeat (it beats with it) and before the pool (the pool tells it its
workers' states, and drains before it leaves the cluster)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from flexvoice.appkeys import (
    CALLS,
    CLUSTER,
    CONFIG,
    FLOWS,
    HEARTBEAT,
    MESSAGING,
    POOL,
    STATUS,
    USAGE_SINK,
    need,
)
from flexvoice.cluster.agents import RemoteAgents
from flexvoice.cluster.member import Member
from flexvoice.cluster.queues import RedisQueueBoard
from flexvoice.cluster.state import ClusterState, client_name
from flexvoice.config import Config
from flexvoice.errors import UserError
from flexvoice.logs import get_logger
from flexvoice.lostlegs import LiveLeg
from flexvoice.sip.addresses import worker_addresses

log = get_logger(__name__)


def node_url(cfg: Config) -> str:
    if cfg.cluster.url:
        return cfg.cluster.url
    host = cfg.http.host
    if host in ("0.0.0.0", "::"):
        raise UserError(
            f"cluster.url: http.host is {host}, so the other nodes cannot tell this node's "
            "address: set cluster.url to http://<address other nodes reach>:<http.port>"
        )
    return f"http://{'[' + host + ']' if ':' in host else host}:{cfg.http.port}"


def check_cluster_config(cfg: Config) -> None:
    c = cfg.cluster
    if not c.enabled:
        if c.edge == "shared":
            raise UserError("cluster.edge: 'shared' needs cluster.enabled: true")
        return
    if not cfg.redis.enabled:
        raise UserError(
            "cluster.enabled: the nodes share their live calls in Redis: set redis.enabled: "
            "true and redis.url to the cluster's Redis"
        )
    if cfg.storage.shared_url is None:
        raise UserError(
            "cluster.enabled: the nodes must share accounts, keys and usage: set "
            "storage.database to the cluster's postgresql://... URL"
        )


async def cluster_component(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    check_cluster_config(cfg)
    if not cfg.cluster.enabled:
        yield
        return
    node = cfg.node_name  # one name for the node: its calls' rows and its Redis entries
    redis = aioredis.from_url(cfg.redis.url, client_name=client_name(node))
    try:
        await redis.ping()
    except Exception as exc:
        await redis.aclose()
        raise UserError(f"redis.url: cannot reach the cluster's Redis: {exc}") from None
    shared_edge = cfg.cluster.edge == "shared"
    member = Member(
        ClusterState(redis, node),
        node_url(cfg),
        sink=need(app, USAGE_SINK, "usage_component", "cluster_component"),
        calls=app.get(CALLS),
        shared_edge=shared_edge,
        queues=RedisQueueBoard(redis, node),
    )
    member.workers = [(w.uri, False) for w in worker_addresses(cfg)]

    async def take_over_messages(lost: str) -> None:
        messaging = app.get(MESSAGING)
        if messaging is not None:
            await messaging.take_over(lost)

    member.lost_hooks.append(take_over_messages)
    heartbeat = need(app, HEARTBEAT, "heartbeat_component", "cluster_component")
    calls = app.get(CALLS)
    if calls is not None:
        calls.listeners.append(member.on_call_event)
    status = app[STATUS]

    async def beat(legs: list[LiveLeg]) -> None:
        try:
            await member.on_beat(legs)
        finally:
            status.shared_state_ok = member.redis_ok
            if shared_edge:
                status.edge_up = member.edge_up
            status.extra["cluster"] = {
                "node": node,
                "redis": member.redis_ok,
                "edge": cfg.cluster.edge,
                "nodes": {n.name: "up" if n.serving else "down" for n in member.nodes},
            }

    # What this node left in Redis in a former life was closed from its own database by
    # the heartbeat component; the Redis copy goes.
    await member.state.leave()
    await member.queues.drop_node(node)
    await member.join()
    flows = app.get(FLOWS)
    if flows is not None:
        flows.queues = member.queues  # callers of every node in one line per queue
    await beat([])
    heartbeat.listeners.append(beat)
    member.session = aiohttp.ClientSession()
    writer = asyncio.create_task(member.write_ownership(), name="cluster-ownership")

    async def free_slots() -> dict[str, int]:
        return await member.state.free_slots(member.nodes, cfg.sip.workers.max_calls)

    # Queue agents dialled for other nodes' callers (the pool starts after us: found later).
    agents = RemoteAgents(redis, node, lambda: app.get(POOL), lambda: app.get(CALLS),
                          free_slots, cfg.cluster.agents_from)  # fmt: skip
    member.queues.agents = agents
    offers = asyncio.create_task(agents.serve(), name="cluster-agent-offers")
    app[CLUSTER] = member
    log.info("cluster.joined", node=node, url=member.url, edge=cfg.cluster.edge)
    try:
        yield
    finally:
        heartbeat.listeners.remove(beat)
        offers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await offers
        await member.settled()
        await asyncio.sleep(0)  # the last ownership changes reach the writer's queue
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        try:
            await member.state.leave()
        except Exception:
            log.exception("cluster.leave_failed")
        await member.session.close()
        await redis.aclose()
        log.info("cluster.left", node=node)

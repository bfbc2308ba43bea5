"""`flexvoice cluster edge` runs the one SIP edge in front of every node of a cluster;
`flexvoice cluster status` lists the nodes as Redis sees them."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

import redis.asyncio as aioredis

from flexvoice.cluster.shared_edge import SharedEdge
from flexvoice.cluster.state import ClusterState
from flexvoice.config import Config, config_from_args
from flexvoice.errors import UserError
from flexvoice.logs import get_logger, setup_logging
from flexvoice.node.edge import keep_running
from flexvoice.node.status import NodeStatus
from flexvoice.sip.edge_cli import build_edge

log = get_logger(__name__)


async def _redis(cfg: Config) -> aioredis.Redis:
    client = aioredis.from_url(cfg.redis.url, client_name="fvedge")
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        why = f"redis.url: cannot reach the cluster's Redis {cfg.redis.url}: {exc}"
        raise UserError(why) from None
    return client


async def run_shared_edge(cfg: Config) -> None:
    edge = build_edge(cfg, [], lambda w: log.warning("trunks.warning", problem=w))
    redis = await _redis(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await edge.start()
        shared = SharedEdge(edge, redis)
        tasks = [
            asyncio.create_task(keep_running(edge, NodeStatus(edge_enabled=True))),
            asyncio.create_task(shared.run()),
        ]
        log.info("shared_edge.started", sip=f"{cfg.sip.edge.host}:{cfg.sip.edge.port}")
        await stop.wait()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await edge.stop()
        await redis.aclose()
        log.info("shared_edge.stopped")


def _edge(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    setup_logging(cfg.logging.level, cfg.logging.format)
    asyncio.run(run_shared_edge(cfg))
    return 0


async def _print_status(cfg: Config) -> int:
    redis = await _redis(cfg)
    try:
        state = ClusterState(redis, "status")
        nodes = await state.nodes()
        edge = "up" if await state.edge_alive() else "not running"
    finally:
        await redis.aclose()
    print(f"shared edge: {edge}")
    print(f"{'node':<24}{'state':<10}{'workers up':>11}  url")
    for n in nodes:
        state_name = "up" if n.serving else ("lost" if n.lost else "stalled")
        up = sum(1 for _uri, ok in n.workers if ok)
        print(f"{n.name:<24}{state_name:<10}{f'{up}/{len(n.workers)}':>11}  {n.url}")
    return 0


def _status(args: argparse.Namespace) -> int:
    return asyncio.run(_print_status(config_from_args(args)))


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("cluster", help="several nodes as one service: the shared edge, status")
    cluster_sub = p.add_subparsers(dest="cluster_command", metavar="ACTION", parser_class=type(p))
    cluster_sub.required = True
    e = cluster_sub.add_parser(
        "edge", help="run the one SIP edge (Kamailio) in front of every node, fed from Redis"
    )
    e.set_defaults(handler=_edge)
    s = cluster_sub.add_parser("status", help="the cluster's nodes and the shared edge")
    s.set_defaults(handler=_status)

"""`flexvoice edge check` and `flexvoice edge status`: the SIP edge from the command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

from flexvoice.config import Config, config_from_args
from flexvoice.errors import UserError
from flexvoice.sip.addresses import WorkerAddress, relay_addresses, worker_addresses
from flexvoice.sip.edge import Edge
from flexvoice.sip.trunks import load_trunks

# Counters worth a glance; the full set is `kamcmd -s unix:<ctl_socket> stats.get_statistics all`.
STATUS_COUNTERS = (
    ("core:rcv_requests", "requests received"),
    ("core:fwd_requests", "requests forwarded"),
    ("core:drop_requests", "requests dropped"),
    ("core:err_requests", "malformed requests"),
    ("sl:4xx_replies", "4xx sent by the edge"),
    ("sl:5xx_replies", "5xx sent by the edge"),
    ("tmx:active_transactions", "transactions in progress"),
)


def build_edge(
    cfg: Config,
    workers: list[WorkerAddress],
    warn: Callable[[str], None],
    state_dir: Path | None = None,
    relays: list[WorkerAddress] | None = None,
) -> Edge:
    """The edge of `cfg` with its trunks read (a mistake stops it, naming file:line:col);
    each trunk warning is told through `warn`. The node's edge commands and the cluster's
    shared edge (flexvoice.cluster_cli) start from here."""
    trunks = load_trunks(cfg.path(cfg.sip.trunks))
    for warning in trunks.warnings:
        warn(str(warning))
    return Edge(cfg, workers, trunks, state_dir=state_dir, relays=relays or [])


def _edge(args: argparse.Namespace, check: bool = False) -> Edge:
    cfg = config_from_args(args)
    # A check writes its files beside, never over, those of an edge that may be running.
    return build_edge(
        cfg,
        worker_addresses(cfg),
        (lambda w: print(f"flexvoice: {w}", file=sys.stderr)) if check else (lambda w: None),
        cfg.path("var/edge/check") if check else None,
        relay_addresses(cfg),
    )


def _check(args: argparse.Namespace) -> int:
    edge = _edge(args, check=True)
    edge.check()
    e = edge.cfg.sip.edge
    relays = f" + {_n(len(edge.relays), 'relay')}" if edge.relays else ""
    print(
        f"edge: {edge.config_file} is valid (listen {e.host}:{e.port} udp+tcp, "
        f"{_n(len(edge.workers), 'worker')}{relays}, {_n(len(edge.trunks), 'trunk')}, "
        f"ACL {'on' if e.acl else 'off'})"
    )
    return 0


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _status(args: argparse.Namespace) -> int:
    edge = _edge(args)
    if not edge.ctl_socket.exists():
        raise UserError(
            f"no SIP edge is running here (no ctl socket at {edge.ctl_socket}); "
            "start the node with 'flexvoice serve'"
        )
    return asyncio.run(_print_status(edge))


async def _print_status(edge: Edge) -> int:
    uptime = await edge.uptime()
    targets = await edge.targets()
    counters = await edge.counters()
    e = edge.cfg.sip.edge
    print(f"edge: up {uptime}s on {e.host}:{e.port} (ACL {'on' if e.acl else 'off'})")
    print(f"{'worker':<8}{'address':<24}{'state':<10}{'calls':>7}")
    for t in targets:
        name = f"w{t.index}" if t.index >= 0 else "?"
        print(f"{name:<8}{t.uri:<24}{t.state:<10}{f'{t.load}/{t.maxload}':>7}")
    for key, label in STATUS_COUNTERS:
        if key in counters:
            print(f"{label:<26}{counters[key]:>10}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("edge", help="the SIP edge (Kamailio): check its configuration, status")
    edge_sub = p.add_subparsers(dest="edge_command", metavar="ACTION", parser_class=type(p))
    edge_sub.required = True
    c = edge_sub.add_parser(
        "check", help="generate the Kamailio configuration and have Kamailio parse it"
    )
    c.set_defaults(handler=_check)
    s = edge_sub.add_parser("status", help="workers as the running edge sees them, counters")
    s.set_defaults(handler=_status)

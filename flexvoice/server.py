"""`flexvoice serve`: run one engine node (flexvoice/node/assembly.py) until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio

from flexvoice.config import Config, config_from_args
from flexvoice.logs import setup_logging
from flexvoice.node.assembly import run_node
from flexvoice.node.status import ServeOptions
from flexvoice.system import require_binary


def preflight(cfg: Config, options: ServeOptions) -> None:
    """Check what the node needs from the machine before anything starts."""
    if options.edge and cfg.sip.edge.enabled:
        require_binary(cfg.sip.edge.kamailio, "kamailio", "the SIP edge", "sip.edge.kamailio")


def _serve(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    setup_logging(cfg.logging.level, cfg.logging.format)
    options = ServeOptions(edge=not args.no_edge)
    preflight(cfg, options)
    asyncio.run(run_node(cfg, options))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="run an engine node (HTTP API, SIP edge, media workers)")
    p.add_argument(
        "--no-edge",
        action="store_true",
        help="development: no Kamailio; one worker listens on the edge port itself (4 calls)",
    )
    p.set_defaults(handler=_serve)

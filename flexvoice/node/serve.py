"""`flexvoice serve` once its arguments are read: check the machine, then run one node
(flexvoice/node/assembly.py) until SIGINT/SIGTERM."""

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


def serve(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    setup_logging(cfg.logging.level, cfg.logging.format)
    options = ServeOptions(edge=not args.no_edge)
    preflight(cfg, options)
    asyncio.run(run_node(cfg, options))
    return 0

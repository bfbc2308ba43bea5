"""`flexvoice serve`: run one engine node until SIGINT/SIGTERM (flexvoice/node/serve.py)."""

from __future__ import annotations

import argparse


def _serve(args: argparse.Namespace) -> int:
    # Imported here, not at the top: the whole node (API, flows, SIP, stores) costs about
    # 2 s of CPU to import, and every other command (numbers, keys, usage export...) would
    # pay it at each start if the command table imported it.
    from flexvoice.node.serve import serve

    return serve(args)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="run an engine node (HTTP API, SIP edge, media workers)")
    p.add_argument(
        "--no-edge",
        action="store_true",
        help="development: no Kamailio; one worker listens on the edge port itself (4 calls)",
    )
    p.set_defaults(handler=_serve)

"""`flexvoice statistics rebuild|verify`: the call statistics' rollups against the call
registry, in the shared store (`storage.database`: SQLite, or PostgreSQL shared by nodes).

`verify` recomputes every ended call's figures and says which rollup rows differ (exit 1 if
any). `rebuild` replaces the rollups with that recomputation: after an upgrade that changes how
a call's figures are read, or to fill the shared store after moving nodes onto PostgreSQL. Both
may run while nodes take calls (flexvoice.statistics.rebuild): no call counts twice.
"""

from __future__ import annotations

import argparse
from typing import Any

from flexvoice.calls import CallRegistry
from flexvoice.statistics.rebuild import rebuild, verify
from flexvoice.statistics.rollup import ensure_schema
from flexvoice.storage.engine import Connection
from flexvoice.storage.open import add_db_option, open_for_command


def _open(args: argparse.Namespace) -> tuple[Connection, CallRegistry]:
    conn = open_for_command(args)
    registry = CallRegistry(conn)
    ensure_schema(conn)
    return conn, registry


def _rebuild(args: argparse.Namespace) -> int:
    conn, registry = _open(args)
    counted = rebuild(conn, registry)
    print(f"statistics rebuilt from {counted:,} ended calls")
    return 0


def _verify(args: argparse.Namespace) -> int:
    conn, registry = _open(args)
    found = verify(conn, registry)
    for line in found:
        print(line)
    if found:
        print(
            "the statistics differ from the call registry (a call that ended in the last "
            "second may still be in its node's batch: run it again); 'flexvoice statistics "
            "rebuild' makes them again"
        )
        return 1
    print("the statistics equal a recomputation from the call registry")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("statistics", help="check or rebuild the call statistics' rollups")
    cmds = p.add_subparsers(dest="statistics_command", metavar="ACTION", parser_class=type(p))
    cmds.required = True
    for name, handler, text in (
        ("verify", _verify, "compare the rollups with the call registry (exit 1 if they differ)"),
        ("rebuild", _rebuild, "make the rollups again from the call registry"),
    ):
        q = cmds.add_parser(name, help=text)
        add_db_option(q)
        q.set_defaults(handler=handler)

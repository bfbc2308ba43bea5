"""`flexvoice db migrate|check`: the shared store's tables (accounts, API keys, numbers, usage,
calls, recordings, flow revisions, designer users, webhook deliveries, call statistics), on
SQLite or PostgreSQL (`storage.database`).

Nodes migrate what they use when they start; `db migrate` does it once beforehand (say, before
rolling out new nodes), and `db check` says whether the store answers and whether every
migration this version knows is applied (exit 1 if not), for deployment scripts.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from flexvoice import accounts, callrecords, users
from flexvoice.api import keys, webhooks
from flexvoice.flows import revisions
from flexvoice.metering import usage_table
from flexvoice.numbers import table as number_table
from flexvoice.recordings import store as recording_store
from flexvoice.statistics import rollup as statistics_rollup
from flexvoice.storage.engine import Connection, Script, is_postgres
from flexvoice.storage.migrate import ensure_migrations_table, migrate
from flexvoice.storage.open import add_db_option, open_for_command
from flexvoice.storage.postgres import PgConnection, shown

# The shared store's components, in the order they depend on each other.
SHARED: tuple[tuple[str, Sequence[Script]], ...] = (
    ("accounts", accounts.MIGRATIONS),
    ("api_keys", keys.MIGRATIONS),
    ("numbers", number_table.MIGRATIONS),
    ("metering", usage_table.MIGRATIONS),
    ("calls", callrecords.MIGRATIONS),
    ("recordings", recording_store.MIGRATIONS),
    ("flow_revisions", revisions.MIGRATIONS),
    ("users", users.MIGRATIONS),
    ("webhooks", webhooks.MIGRATIONS),
    ("statistics", statistics_rollup.MIGRATIONS),
)


def _open(args: argparse.Namespace) -> Connection:
    return open_for_command(args)


def _where(conn: Connection) -> str:
    return f"PostgreSQL {shown(conn.url)}" if isinstance(conn, PgConnection) else "SQLite"


def _applied(conn: Connection) -> dict[str, int]:
    ensure_migrations_table(conn)
    rows = conn.execute("SELECT component, max(version) FROM schema_migrations GROUP BY component")
    return {str(r[0]): int(r[1]) for r in rows}


def _migrate(args: argparse.Namespace) -> int:
    conn = _open(args)
    before = _applied(conn)
    for component, scripts in SHARED:
        migrate(conn, component, scripts)
    after = _applied(conn)
    for component, scripts in SHARED:
        done = after.get(component, 0) - before.get(component, 0)
        note = f"{done} applied now" if done else "up to date"
        print(f"{component}: version {after.get(component, 0)} of {len(scripts)} ({note})")
    print(f"the shared store ({_where(conn)}) is ready")
    return 0


def _check(args: argparse.Namespace) -> int:
    conn = _open(args)  # an unreachable server stops here with one line
    applied = _applied(conn)
    pending = 0
    for component, scripts in SHARED:
        have = applied.get(component, 0)
        pending += max(0, len(scripts) - have)
        state = "ok" if have >= len(scripts) else f"{len(scripts) - have} to apply"
        print(f"{component}: version {have} of {len(scripts)} ({state})")
    engine = "postgresql" if is_postgres(conn) else "sqlite"
    print(f"shared store: {engine}, reachable; {_where(conn)}")
    if pending:
        print(f"{pending} migrations to apply: run 'flexvoice db migrate' (or start a node)")
        return 1
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("db", help="the shared store: migrate its tables, check it answers")
    cmds = p.add_subparsers(dest="db_command", metavar="ACTION", parser_class=type(p))
    cmds.required = True
    for name, handler, text in (
        ("migrate", _migrate, "create or migrate the shared tables now"),
        ("check", _check, "is the store reachable and up to date? (exit 1 if not)"),
    ):
        q = cmds.add_parser(name, help=text)
        add_db_option(q)
        q.set_defaults(handler=handler)

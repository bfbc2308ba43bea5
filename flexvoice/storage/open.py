"""Which database each store opens, from `storage.database` (and `storage.local`).

The shared stores (accounts, API keys, numbers, usage, calls and their legs and traces,
recordings' rows, flow revisions, designer users, webhook deliveries) open `storage.database`:
a SQLite file on one node, or PostgreSQL shared by several. What stays per node opens this
node's own SQLite file (`storage.local_database`), whichever engine the shared ones use.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from flexvoice.config import Config, config_from_args, is_database_url
from flexvoice.storage import postgres, sqlite
from flexvoice.storage.engine import Connection


def open_database(target: Path | str, where: str = "--db") -> Connection:
    """A command's --db: a SQLite file path or a postgresql:// URL."""
    text = str(target)
    return postgres.connect(text, where) if is_database_url(text) else sqlite.connect(text)


def add_db_option(parser: argparse.ArgumentParser) -> None:
    """The `--db` every command on the shared store takes (read by `open_for_command`)."""
    parser.add_argument(
        "--db", default=None, help="SQLite file or postgresql:// URL (default: storage.database)"
    )


def open_for_command(args: argparse.Namespace) -> Connection:
    """The shared store a command works on: its --db, else `storage.database` (the node's
    configuration is read only when there is no --db)."""
    return open_database(args.db) if args.db else open_shared(config_from_args(args))


def open_shared(cfg: Config, override: Path | str | None = None) -> Connection:
    """The store of accounts, keys and usage; `override` is a command's --db (path or URL)."""
    if override is not None:
        return open_database(override)
    url = cfg.storage.shared_url
    return postgres.connect(url) if url is not None else sqlite.connect(local_path(cfg))


def local_path(cfg: Config) -> Path:
    """This node's own SQLite file (what stays per node, and the usage spool beside it)."""
    return cfg.path(cfg.storage.local_database)


def spool_dir(cfg: Config) -> Path:
    """This node's usage spool (and its rejected.jsonl): beside its own SQLite file, whichever
    engine the shared store is."""
    return local_path(cfg).parent / "usage-spool"

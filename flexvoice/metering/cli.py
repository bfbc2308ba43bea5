"""`flexvoice accounts ...` and `flexvoice usage ...`: accounts and their tariffs, importing
usage, finance exports and rerating."""

from __future__ import annotations

import argparse
import functools
import os
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flexvoice import accounts
from flexvoice.config import Config, config_from_args
from flexvoice.errors import UserError
from flexvoice.metering.export import write_export
from flexvoice.metering.sink import StoreSink
from flexvoice.metering.store import BATCH_SIZE, UsageStore
from flexvoice.metering.tariffs import load_tariffs
from flexvoice.metering.timing import check_month
from flexvoice.storage.engine import Connection
from flexvoice.storage.open import add_db_option, open_shared, spool_dir
from flexvoice.yamlwords import did_you_mean

EXIT_REJECTED = 1
UNRATED_SHOWN = 20


def _config(args: Any) -> Config:
    return config_from_args(args)


def _conn(args: Any, cfg: Config) -> Connection:
    return open_shared(cfg, args.db)


def open_store(args: Any) -> UsageStore:
    return UsageStore.from_config(_config(args), args.db)


def _busy_is_user_error(handler: Callable[[Any], int]) -> Callable[[Any], int]:
    """SQLite waits 30 s for a writer (another import, a rerate, the node's sink); past that
    the command stops with one line instead of an internal error."""

    @functools.wraps(handler)
    def run(args: Any) -> int:
        try:
            return handler(args)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            raise UserError(
                f"the database is busy ({exc}): another import or rerate is writing; "
                "run the command again when it is done"
            ) from None

    return run


def _month(text: str) -> str:
    try:
        return check_month(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ---- accounts ---------------------------------------------------------------------------


def _accounts_create(args: Any) -> int:
    cfg = _config(args)
    folder = cfg.path(cfg.paths.tariffs)
    accounts.check_tariff(args.tariff, folder)
    load_tariffs(folder).require(args.tariff)  # a broken tariff file is refused now, not later
    account = accounts.create_account(_conn(args, cfg), args.name, args.tariff, folder)
    print(f"created account {account.name} (tariff {account.tariff})")
    return 0


def _accounts_list(args: Any) -> int:
    cfg = _config(args)
    rows = accounts.list_accounts(_conn(args, cfg))
    if not rows:
        print("no accounts; create one with 'flexvoice accounts create NAME --tariff TARIFF'")
        return 0
    width = max(len(a.name) for a in rows)
    for a in rows:
        print(f"{a.name:<{width}}  {a.tariff:<20}  {a.status:<9}  {a.created_at}")
    return 0


def _accounts_status(args: Any) -> int:
    cfg = _config(args)
    account = accounts.set_status(_conn(args, cfg), args.name, args.status)
    print(f"account {account.name} is {account.status}")
    return 0


def _accounts_set(args: Any) -> int:
    cfg = _config(args)
    conn = _conn(args, cfg)
    if args.recording_retention is None and args.designer is None:
        raise UserError(
            "nothing to set; give --designer on|off or --recording-retention DAYS (e.g. 30d)"
        )
    if args.recording_retention is not None:
        days = accounts.parse_retention(args.recording_retention)
        accounts.set_recording_retention(conn, args.name, days)
        print(f"account {args.name}: recordings are kept {days} days")
    if args.designer is not None:
        sink = StoreSink(UsageStore.from_config(cfg, args.db), spool_dir(cfg))
        on = args.designer == "on"
        changed = accounts.set_designer(conn, args.name, on, sink.record)
        state = "on" if on else "off"
        if not changed:
            print(f"account {args.name}: the designer was already {state}")
        elif on:
            print(f"account {args.name}: the designer is on (billed per started calendar month)")
        else:
            print(f"account {args.name}: the designer is off (its period is closed)")
    return 0


# ---- usage ------------------------------------------------------------------------------


def _usage_import(args: Any) -> int:
    path: Path = args.file
    store = open_store(args)
    try:
        report = store.ingest_file(path, _jobs(args.jobs, path), args.batch_size)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder; give a .jsonl file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from None
    for r in report.rejected:
        what = f"event '{r.event_id}': " if r.event_id else ""
        print(f"flexvoice: {path}:{r.line}: {what}{r.reason}", file=sys.stderr)
    # Unrated events are stored and listed by every export: the first few are enough here.
    for r in report.unrated[:UNRATED_SHOWN]:
        print(
            f"flexvoice: {path}:{r.line}: warning: event '{r.event_id}' is unrated: {r.reason}",
            file=sys.stderr,
        )
    if len(report.unrated) > UNRATED_SHOWN:
        more = len(report.unrated) - UNRATED_SHOWN
        print(f"flexvoice: warning: and {more} more unrated events", file=sys.stderr)
    closed = f", periods closed {report.closed}" if report.closed else ""
    print(
        f"imported {report.imported}, duplicates {report.duplicates}, "
        f"rejected {len(report.rejected)}, unrated {len(report.unrated)}{closed}"
    )
    if report.unrated:
        print(
            "unrated events are stored; once the tariff prices them, run "
            "'flexvoice usage rerate --month YYYY-MM'",
            file=sys.stderr,
        )
    if report.rejected:
        print(
            f"flexvoice: {len(report.rejected)} line(s) rejected (listed above); fix them and "
            "import the file again: what was imported counts as duplicates",
            file=sys.stderr,
        )
        return EXIT_REJECTED
    return 0


PARALLEL_FROM_BYTES = 16 * 1024 * 1024


def _jobs(requested: int, path: Path) -> int:
    """0 = automatic: worker processes for big files (one per core, at most 4)."""
    if requested > 0:
        return requested
    try:
        big = path.stat().st_size >= PARALLEL_FROM_BYTES
    except OSError:
        return 1  # the open reports the problem
    return min(os.cpu_count() or 1, 4) if big else 1


def _usage_export(args: Any) -> int:
    store = open_store(args)
    if args.account is not None and accounts.get_account(store.conn, args.account) is None:
        known = [a.name for a in accounts.list_accounts(store.conn)]
        raise UserError(f"no account '{args.account}'{did_you_mean(args.account, known)}")
    fmt = args.format
    if args.output is None:
        write_export(sys.stdout, store, args.month, args.account, fmt, args.detail)
        sys.stdout.flush()
    else:
        out: Path = args.output
        # Written next to the target and renamed: a reader never sees half an export.
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent or Path("."))
        except OSError as exc:
            raise UserError(f"cannot write {out}: {exc.strerror}") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
                rows = write_export(stream, store, args.month, args.account, fmt, args.detail)
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        print(f"wrote {rows} rows to {out}", file=sys.stderr)
    unrated = store.unrated_count(args.month, args.account)
    if unrated:
        print(
            f"flexvoice: warning: {unrated} event(s) of {args.month} are unrated (rows "
            "'unrated: ...'); once the tariff prices them, run "
            f"'flexvoice usage rerate --month {args.month}'",
            file=sys.stderr,
        )
    return 0


def _usage_rerate(args: Any) -> int:
    store = open_store(args)
    report = store.rerate(args.month)
    print(
        f"rerated {report.events} events of {args.month}: {report.changed} changed, "
        f"{report.unrated} still unrated"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    acc = sub.add_parser("accounts", help="create, list, suspend and activate accounts")
    acc_sub = acc.add_subparsers(dest="accounts_command", metavar="ACTION")
    acc_sub.required = True

    p = acc_sub.add_parser("create", help="create an account priced under a tariff")
    p.add_argument("name")
    p.add_argument("--tariff", required=True, help="a file name in metering/tariffs, no .yaml")
    add_db_option(p)
    p.set_defaults(handler=_busy_is_user_error(_accounts_create))

    p = acc_sub.add_parser("list", help="list accounts with tariff and status")
    add_db_option(p)
    p.set_defaults(handler=_accounts_list)

    for action, status, text in (
        ("suspend", "suspended", "suspend an account (its numbers refuse calls)"),
        ("activate", "active", "activate a suspended account"),
    ):
        p = acc_sub.add_parser(action, help=text)
        p.add_argument("name")
        add_db_option(p)
        p.set_defaults(handler=_accounts_status, status=status)

    p = acc_sub.add_parser(
        "set", help="change an account's options (visual designer, recording retention)"
    )
    p.add_argument("name")
    p.add_argument(
        "--designer",
        choices=("on", "off"),
        help="the visual designer: on opens a monthly-billed period, off closes it",
    )
    p.add_argument(
        "--recording-retention",
        metavar="DAYS",
        help="keep recordings' audio this long, e.g. 30d (default 90d); older ones are deleted",
    )
    add_db_option(p)
    p.set_defaults(handler=_busy_is_user_error(_accounts_set))

    usage = sub.add_parser("usage", help="import, export and rerate priced usage")
    usage_sub = usage.add_subparsers(dest="usage_command", metavar="ACTION")
    usage_sub.required = True

    p = usage_sub.add_parser("import", help="import usage events from a JSON Lines file")
    p.add_argument("file", type=Path, help="JSON Lines: one usage event per line")
    add_db_option(p)
    p.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="processes that parse, rate and store (default: one per core for files over 16 MB)",
    )
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, help=argparse.SUPPRESS)
    p.set_defaults(handler=_busy_is_user_error(_usage_import))

    p = usage_sub.add_parser("export", help="export a month's statement (CSV or JSON)")
    p.add_argument("--month", required=True, type=_month, help="YYYY-MM (Europe/Brussels)")
    p.add_argument("--account", default=None, help="only this account (default: all)")
    p.add_argument("--format", choices=("csv", "json"), default="csv", help="default: csv")
    p.add_argument("--detail", action="store_true", help="one row per event")
    p.add_argument("-o", "--output", type=Path, default=None, help="file (default: stdout)")
    add_db_option(p)
    p.set_defaults(handler=_busy_is_user_error(_usage_export))

    p = usage_sub.add_parser("rerate", help="rate a month again with the tariffs in force")
    p.add_argument("--month", required=True, type=_month, help="YYYY-MM (Europe/Brussels)")
    add_db_option(p)
    p.set_defaults(handler=_busy_is_user_error(_usage_rerate))

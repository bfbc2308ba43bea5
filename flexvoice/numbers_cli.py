"""`flexvoice numbers list|add|remove|continuity`: the number registry from the command line.

Each command first syncs sip/numbers.yaml into the database (as `flexvoice serve` does at
start), so what it shows and changes is what the node will answer with.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from flexvoice.config import config_from_args
from flexvoice.errors import UserError
from flexvoice.metering.sink import StoreSink
from flexvoice.metering.store import UsageStore
from flexvoice.numbers import Number, NumberRegistry
from flexvoice.storage.open import add_db_option, open_shared, spool_dir


def open_registry(args: argparse.Namespace) -> NumberRegistry:
    cfg = config_from_args(args)
    db = args.db or None
    # Numbers live beside the accounts, as does the usage their monthly `number` period makes
    # (one SQLite file, or the PostgreSQL shared by several nodes).
    registry = NumberRegistry(
        open_shared(cfg, db), StoreSink(UsageStore.from_config(cfg, db), spool_dir(cfg))
    )
    numbers_file = Path(args.numbers_file) if args.numbers_file else cfg.path(cfg.sip.numbers)
    registry.sync_from_yaml(numbers_file)
    return registry


def _line(n: Number) -> str:
    target = f"flow={n.flow}" if n.flow else f"prompt={n.prompt}"
    cont = ""
    if n.forward_to:
        cont = f" continuity={'on' if n.continuity_active else 'off'}->{n.forward_to}"
    owner = "numbers.yaml" if n.source == "yaml" else "api"
    suspended = " SUSPENDED" if n.suspended else ""
    return f"{n.e164}  account={n.account}{suspended}  {target}{cont}  ({owner})"


def _list(args: argparse.Namespace) -> int:
    registry = open_registry(args)
    numbers = registry.list(args.account)
    for n in numbers:
        print(_line(n))
    if not numbers:
        print("no numbers" + (f" for account '{args.account}'" if args.account else ""))
    return 0


def _add(args: argparse.Namespace) -> int:
    registry = open_registry(args)
    number, created = registry.put(args.number, args.account, args.flow, prompt=args.prompt)
    print(("added " if created else "updated ") + _line(number))
    return 0


def _remove(args: argparse.Namespace) -> int:
    registry = open_registry(args)
    number = registry.delete(args.number)
    print(f"removed {number.e164} from account {number.account}")
    return 0


def _continuity(args: argparse.Namespace) -> int:
    if args.active is None:
        raise UserError("say --on or --off (and --forward-to NUMBER the first time)")
    registry = open_registry(args)
    number = registry.set_continuity(args.number, args.forward_to, args.active)
    print(_line(number))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("numbers", help="geographic numbers: list, add, remove, Voice Continuity")
    cmds = p.add_subparsers(dest="numbers_command", metavar="ACTION", parser_class=type(p))
    cmds.required = True

    def common(q: argparse.ArgumentParser) -> None:
        add_db_option(q)
        q.add_argument(
            "--numbers-file", help="numbers file to sync first (default: sip.numbers from config)"
        )

    q = cmds.add_parser("list", help="list numbers, with their account, flow and continuity")
    q.add_argument("--account", help="only this account's numbers")
    common(q)
    q.set_defaults(handler=_list)

    q = cmds.add_parser("add", help="add a number to an account (or change its flow)")
    q.add_argument("number", help="geographic number in E.164, e.g. +3225551001")
    q.add_argument("--account", required=True)
    target = q.add_mutually_exclusive_group(required=True)
    target.add_argument("--flow", help="flow name (flows/NAME.yaml)")
    target.add_argument("--prompt", help="prompt to play (ivr_prompts/NAME.wav)")
    common(q)
    q.set_defaults(handler=_add)

    q = cmds.add_parser("remove", help="remove a number (ends its monthly charge)")
    q.add_argument("number")
    common(q)
    q.set_defaults(handler=_remove)

    q = cmds.add_parser("continuity", help="Voice Continuity: forward every call elsewhere")
    q.add_argument("number")
    q.add_argument("--forward-to", help="where calls go while continuity is on (E.164)")
    onoff = q.add_mutually_exclusive_group()
    onoff.add_argument("--on", dest="active", action="store_const", const=True, default=None)
    onoff.add_argument("--off", dest="active", action="store_const", const=False)
    common(q)
    q.set_defaults(handler=_continuity)

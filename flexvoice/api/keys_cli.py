"""`flexvoice keys create|list|revoke|webhook-secret|unlock`: API keys per account and role,
and lifting the failed-authentication lockout of a client address."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
from pathlib import Path
from typing import Any

from flexvoice.accounts import get_account
from flexvoice.api.guards import unlock_redis, unlock_sqlite
from flexvoice.api.keys import ROLES, create_key, list_keys, revoke_key, webhook_secret
from flexvoice.config import config_from_args
from flexvoice.errors import UserError
from flexvoice.storage.open import add_db_option, local_path, open_for_command
from flexvoice.storage.sqlite import connect


def _local(args: argparse.Namespace) -> Any:
    """Lockouts without Redis: this node's own SQLite file."""
    return connect(Path(args.db) if args.db else local_path(config_from_args(args)))


def _create(args: argparse.Namespace) -> int:
    key, text = create_key(open_for_command(args), args.account, args.role, args.label)
    print(text)
    print(
        f"# key {key.id} for account {key.account}, role {key.role}: shown once, store it now "
        "(only its hash is kept)",
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    keys = list_keys(open_for_command(args), args.account)
    for k in keys:
        state = f"revoked {k.revoked_at}" if k.revoked_at else "active"
        label = f"  {k.label}" if k.label else ""
        print(f"{k.id}  account={k.account}  role={k.role}  created={k.created_at}  {state}{label}")
    if not keys:
        print("no keys")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    revoke_key(open_for_command(args), args.key_id)
    print(f"revoked {args.key_id}")
    return 0


def _webhook_secret(args: argparse.Namespace) -> int:
    conn = open_for_command(args)
    if get_account(conn, args.account) is None:
        raise UserError(f"no account '{args.account}'")
    print(webhook_secret(conn, args.account, rotate=args.rotate))
    return 0


async def _unlock_in_redis(url: str, address: str) -> bool:
    import redis.asyncio as aioredis  # optional: only nodes with redis.enabled have it running

    client: Any = aioredis.from_url(url)
    try:
        return await unlock_redis(client, address)
    finally:
        await client.aclose()


def _unlock(args: argparse.Namespace) -> int:
    address = args.address.strip()
    try:
        address = str(ipaddress.ip_address(address))
    except ValueError:
        raise UserError(
            f"--address: '{args.address}' is not an IP address (e.g. 203.0.113.7 or ::1)"
        ) from None
    lifted = unlock_sqlite(_local(args), address)
    if not args.db:
        cfg = config_from_args(args)
        if cfg.redis.enabled:
            lifted = asyncio.run(_unlock_in_redis(cfg.redis.url, address)) or lifted
    print(f"unlocked {address}" if lifted else f"{address} was not locked out; nothing to do")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("keys", help="REST API keys (per account and role), webhook secrets")
    cmds = p.add_subparsers(dest="keys_command", metavar="ACTION", parser_class=type(p))
    cmds.required = True

    q = cmds.add_parser("create", help="create a key; it is printed once and stored hashed")
    q.add_argument("--account", required=True)
    q.add_argument("--role", required=True, choices=ROLES)
    q.add_argument("--label", help="a note to recognise the key later (e.g. 'crm prod')")
    add_db_option(q)
    q.set_defaults(handler=_create)

    q = cmds.add_parser("list", help="list keys (ids, roles; never the secrets)")
    q.add_argument("--account")
    add_db_option(q)
    q.set_defaults(handler=_list)

    q = cmds.add_parser("revoke", help="revoke a key by its id")
    q.add_argument("key_id")
    add_db_option(q)
    q.set_defaults(handler=_revoke)

    q = cmds.add_parser(
        "webhook-secret", help="print the account's webhook signing secret (--rotate: a new one)"
    )
    q.add_argument("--account", required=True)
    q.add_argument("--rotate", action="store_true")
    add_db_option(q)
    q.set_defaults(handler=_webhook_secret)

    q = cmds.add_parser(
        "unlock", help="lift the lockout of a client address after failed authentications"
    )
    q.add_argument("--address", required=True, help="the client's IP address, as logged")
    add_db_option(q)
    q.set_defaults(handler=_unlock)

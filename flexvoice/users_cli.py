"""`flexvoice users create|reset|unlock|list`: people who log in to the designer.

The password is read from standard input when it is piped (`--password-stdin`, for scripts),
else asked twice without echo; with `--generate` a random one is made and printed once.
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from typing import Any

from flexvoice import users
from flexvoice.errors import UserError
from flexvoice.storage.engine import Connection
from flexvoice.storage.open import add_db_option, open_for_command


def _conn(args: argparse.Namespace) -> Connection:
    """Users live beside the accounts they belong to: the shared store (storage.database,
    a SQLite file or PostgreSQL), or --db."""
    return open_for_command(args)


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """(password, generated)."""
    if args.generate:
        return secrets.token_urlsafe(12), True
    if args.password_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise UserError("--password-stdin: no password on standard input")
        return line, False
    if not sys.stdin.isatty():
        raise UserError("give the password with --password-stdin, or --generate one")
    first = getpass.getpass("password: ")
    users.check_new_password(first)
    if getpass.getpass("again: ") != first:
        raise UserError("the two passwords differ; nothing changed")
    return first, False


def _create(args: argparse.Namespace) -> int:
    conn = _conn(args)
    password, generated = _password(args)
    user = users.create_user(conn, args.email, args.account, args.role, password)
    print(f"created user {user.email} (account {user.account}, role {user.role})")
    if generated:
        print(f"password: {password}  (shown once; give it to {user.email})")
    return 0


def _reset(args: argparse.Namespace) -> int:
    conn = _conn(args)
    password, generated = _password(args)
    users.reset_password(conn, args.email, password)
    print(f"new password set for {args.email.strip().lower()}; it is unlocked, its sessions ended")
    if generated:
        print(f"password: {password}  (shown once)")
    return 0


def _unlock(args: argparse.Namespace) -> int:
    users.unlock(_conn(args), args.email)
    print(f"unlocked {args.email.strip().lower()}")
    return 0


def _list(args: argparse.Namespace) -> int:
    rows = users.list_users(_conn(args))
    if not rows:
        print("no users; create one with 'flexvoice users create EMAIL --account A --role manager'")
    for u in rows:
        state = "LOCKED" if u.locked else "active"
        print(f"{u.email}  account={u.account}  role={u.role}  {state}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("users", help="people who log in to the designer (e-mail and password)")
    cmds = p.add_subparsers(dest="users_command", metavar="ACTION", parser_class=type(p))
    cmds.required = True

    def common(q: argparse.ArgumentParser, password: bool = False) -> None:
        q.add_argument("email")
        if password:
            how = q.add_mutually_exclusive_group()
            how.add_argument(
                "--password-stdin", action="store_true", help="read the password from stdin"
            )
            how.add_argument(
                "--generate", action="store_true", help="make a random password, print it once"
            )
        add_db_option(q)

    q = cmds.add_parser("create", help="create a user of an account with a role")
    common(q, password=True)
    q.add_argument("--account", required=True)
    q.add_argument(
        "--role",
        required=True,
        choices=users.ROLES,
        help="administrator and manager edit and publish flows; agent and analyst read",
    )
    q.set_defaults(handler=_create)

    q = cmds.add_parser("reset", help="set a new password (also unlocks)")
    common(q, password=True)
    q.set_defaults(handler=_reset)

    q = cmds.add_parser("unlock", help="unlock a user locked after five wrong passwords")
    common(q)
    q.set_defaults(handler=_unlock)

    q = cmds.add_parser("list", help="list users with account, role and lock state")
    add_db_option(q)
    q.set_defaults(handler=_list)

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from flexvoice.accounts import create_account
from flexvoice.api.keys import verify_key
from flexvoice.storage.sqlite import connect
from tests.conftest import run_cli

pytestmark = pytest.mark.process  # the CLI, a node or Redis as real processes


def test_keys_are_shown_once_and_stored_hashed(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    create_account(connect(db), "acme", "flexio-payu")
    r = run_cli("keys", "create", "--account", "acme", "--role", "finance", "--db", str(db))
    assert r.returncode == 0, r.stderr
    key = r.stdout.splitlines()[0]
    assert key.startswith("fvk_") and "shown once" in r.stdout
    raw = sqlite3.connect(db).execute("SELECT * FROM api_keys").fetchall()
    assert key.split("_", 2)[2] not in repr(raw)  # only the hash is kept
    principal = verify_key(connect(db), key)
    assert principal is not None and (principal.account, principal.role) == ("acme", "finance")
    assert verify_key(connect(db), key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    r = run_cli("keys", "list", "--db", str(db))
    assert "role=finance" in r.stdout and key not in r.stdout
    r = run_cli("keys", "revoke", principal.key_id, "--db", str(db))
    assert r.returncode == 0 and verify_key(connect(db), key) is None
    r = run_cli("keys", "create", "--account", "ghost", "--role", "admin", "--db", str(db))
    assert r.returncode == 2 and "no account 'ghost'" in r.stderr

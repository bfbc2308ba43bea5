from __future__ import annotations

from pathlib import Path

import pytest

from flexvoice.accounts import create_account, get_account, list_accounts, set_status
from flexvoice.errors import UserError
from flexvoice.storage.sqlite import connect, migrate


def test_accounts_create_suspend_and_refuse_duplicates(tmp_path: Path) -> None:
    conn = connect(tmp_path / "sub" / "db.sqlite")
    create_account(conn, "bakery", "flexio-payu")
    assert get_account(conn, "bakery") is not None
    with pytest.raises(UserError, match="already exists"):
        create_account(conn, "bakery", "flexio-payu")
    with pytest.raises(UserError, match="not allowed"):
        create_account(conn, "Bad Name", "flexio-payu")
    assert set_status(conn, "bakery", "suspended").status == "suspended"
    with pytest.raises(UserError, match="no account 'ghost'"):
        set_status(conn, "ghost", "active")
    assert [a.name for a in list_accounts(conn)] == ["bakery"]


def test_migrations_apply_once_and_roll_back_on_error(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite")
    scripts = ["CREATE TABLE t (x INTEGER);", "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);"]
    migrate(conn, "demo", scripts)
    migrate(conn, "demo", scripts)
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 2
    broken = [*scripts, "INSERT INTO t VALUES (3); THIS IS NOT SQL;"]
    with pytest.raises(Exception, match="syntax error"):
        migrate(conn, "demo", broken)
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 2


def test_schema_checked_once_per_connection(tmp_path: Path) -> None:
    """The hot paths (an account read per API request) do not re-read schema_migrations;
    another connection (a restart) still finds and applies what is missing."""
    conn = connect(tmp_path / "db.sqlite")
    create_account(conn, "bakery", "flexio-payu")
    conn.execute("DELETE FROM schema_migrations WHERE component = 'accounts' AND version = 3")
    assert get_account(conn, "bakery") is not None  # no second look on this connection
    assert (
        conn.execute(
            "SELECT count(*) FROM schema_migrations WHERE component = 'accounts'"
        ).fetchone()[0]
        == 2
    )
    other = connect(tmp_path / "db.sqlite")
    with pytest.raises(Exception, match="duplicate column"):
        get_account(other, "bakery")  # it looked, and tried version 3 again

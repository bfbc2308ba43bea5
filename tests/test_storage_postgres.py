"""The shared stores on a real PostgreSQL server: accounts, API keys and the usage feed
(imported exactly once by nodes importing at the same time, or after a crash), and the same
statements and exports as on SQLite, byte for byte."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from flexvoice import accounts
from flexvoice.api import keys
from flexvoice.errors import UserError
from flexvoice.metering.store import UsageStore
from flexvoice.metering.tariffs import load_tariffs
from flexvoice.storage import postgres
from flexvoice.system import free_port
from tests.conftest import REPO, cli_env, run_cli
from tests.metering_helpers import TARIFFS, call, sms

pytestmark = pytest.mark.process  # a real PostgreSQL server and the CLI as processes


def _write(path: Path, events: list[Any]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM usage_events").fetchone()
        return int(row[0]) if row else 0


def _numbers(out: str) -> tuple[int, int]:
    """(imported, duplicates) from 'imported N, duplicates M, ...'."""
    imported, duplicates = (int(x.split()[-1]) for x in out.split(",")[:2])
    return imported, duplicates


def _import(path: Path, url: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flexvoice", "usage", "import", str(path), "--db", url, *extra],
        cwd=REPO,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_accounts_and_keys_on_postgres(pg_url: str) -> None:
    conn = postgres.connect(pg_url)
    accounts.create_account(conn, "zeta", "flexio-payu", TARIFFS)
    accounts.create_account(conn, "acme-2", "flexio-payu")
    accounts.create_account(conn, "acme", "vms-smart-routing")
    with pytest.raises(UserError, match="account 'acme' already exists"):
        accounts.create_account(conn, "acme", "flexio-payu")
    # Byte order, as on SQLite (not the server locale's).
    assert [a.name for a in accounts.list_accounts(conn)] == ["acme", "acme-2", "zeta"]
    assert accounts.set_status(conn, "acme", "suspended").status == "suspended"
    events: list[dict[str, Any]] = []
    assert accounts.set_designer(conn, "acme", True, events.append)
    assert not accounts.set_designer(conn, "acme", True, events.append)
    assert accounts.designer_enabled(conn, "acme")
    assert accounts.set_designer(conn, "acme", False, events.append)
    assert [e["active_to"] is None for e in events] == [True, False]
    accounts.set_recording_retention(conn, "acme", 30)
    assert accounts.recording_retention_days(conn, "acme") == 30

    key, text = keys.create_key(conn, "acme", "developer", "crm")
    principal = keys.verify_key(conn, text)
    assert principal is not None and (principal.account, principal.role) == ("acme", "developer")
    assert keys.verify_key(conn, text[:-1] + ("x" if text[-1] != "x" else "y")) is None
    keys.revoke_key(conn, key.id)
    assert keys.verify_key(conn, text) is None
    secret = keys.webhook_secret(conn, "acme")
    assert keys.webhook_secret(conn, "acme") == secret
    assert keys.webhook_secret(conn, "acme", rotate=True) != secret
    conn.close()
    # A second connection (another node) sees the same rows and migrates nothing again.
    other = postgres.connect(pg_url)
    assert [k.id for k in keys.list_keys(other, "acme")] == [key.id]
    rows = other.execute("SELECT component, count(*) FROM schema_migrations GROUP BY component")
    assert dict(rows.fetchall()) == {"accounts": 3, "api_keys": 1}
    other.close()


def test_money_is_numeric_and_read_as_decimal(pg_url: str) -> None:
    conn = postgres.connect(pg_url)
    accounts.create_account(conn, "acme", "flexio-payu")
    store = UsageStore(conn, load_tariffs(TARIFFS))
    report = store.ingest([call("a", 61), sms("s", "hi")])
    assert report.imported == 2
    kind = conn.execute(
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_name = 'usage_events' AND column_name = 'unit_price'"
    ).fetchone()
    assert kind == ("numeric",)
    prices = {r[0] for r in conn.execute("SELECT unit_price FROM usage_events")}
    assert prices and all(isinstance(p, Decimal) for p in prices)
    total = next(s for s in store.statement("2024-03") if s.service == "total")
    assert isinstance(total.amount, Decimal) and total.amount > 0
    assert store.rerate("2024-03").changed == 0  # the stored prices read back unchanged
    conn.close()


def test_statements_and_exports_match_sqlite_byte_for_byte(tmp_path: Path, pg_url: str) -> None:
    events: list[Any] = [call(f"e{i}", i % 130, to="+32470123456") for i in range(300)]
    events += [call(f"f{i}", 30 + i, to="+33612345678") for i in range(5)]  # unrated
    events += [sms(f"s{i}", "x" * (i * 40)) for i in range(20)]
    events.append({"id": "n1", "account": "acme", "kind": "number", "number": "+3225550001",
                   "active_from": "2024-02-10T00:00:00Z", "active_to": None})  # fmt: skip
    path = _write(tmp_path / "u.jsonl", events)
    sqlite_db = str(tmp_path / "u.db")
    outputs: dict[str, list[str]] = {}
    for db in (sqlite_db, pg_url):
        made = run_cli("accounts", "create", "acme", "--tariff", "flexio-payu", "--db", db)
        assert made.returncode == 0, made.stderr
        out = run_cli("usage", "import", str(path), "--db", db)
        assert out.stdout.startswith("imported 326, duplicates 0"), out.stderr
        outputs[db] = [
            run_cli("usage", "export", "--month", "2024-03", "--db", db, *extra).stdout
            for extra in ((), ("--detail",), ("--format", "json"))
        ]
        assert "0 changed" in run_cli("usage", "rerate", "--month", "2024-03", "--db", db).stdout
    assert outputs[sqlite_db] == outputs[pg_url]
    assert outputs[pg_url][1].count("\n") == 327  # header + every event of March


def test_two_nodes_importing_the_same_spool_at_once_count_each_event_once(
    tmp_path: Path, pg_url: str
) -> None:
    n = 12_000
    events = [call(f"c{i}", i % 200, start=f"2024-03-{1 + i % 28:02d}T10:00:00+01:00")
              for i in range(n)]  # fmt: skip
    path = _write(tmp_path / "spool.jsonl", events)
    made = run_cli("accounts", "create", "acme", "--tariff", "flexio-payu", "--db", pg_url)
    assert made.returncode == 0, made.stderr
    # Both start on a database without a usage table: they also race to create it.
    procs = [_import(path, pg_url, "--batch-size", "500") for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    for proc, (_out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
    counts = [_numbers(out) for out, _ in results]
    assert sum(c[0] for c in counts) == n, counts
    assert sum(c[1] for c in counts) == n, counts
    assert _count(pg_url) == n
    minutes = sum(-(-(i % 200) // 60) for i in range(n))
    export = run_cli("usage", "export", "--month", "2024-03", "--db", pg_url).stdout
    assert f"acme,2024-03,voice_out_mobile,{minutes},minute,0.37," in export


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_killed_import_into_postgres_loses_and_doubles_nothing(
    tmp_path: Path, pg_url: str, jobs: str
) -> None:
    n = 30_000
    events = [call(f"k{i}", i % 200) for i in range(n)]
    path = _write(tmp_path / "big.jsonl", events)
    made = run_cli("accounts", "create", "acme", "--tariff", "flexio-payu", "--db", pg_url)
    assert made.returncode == 0, made.stderr
    proc = _import(path, pg_url, "--batch-size", "500", "--jobs", jobs)
    stored = 0
    deadline = time.monotonic() + 60
    try:
        while stored == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
            try:
                stored = _count(pg_url)
            except psycopg.errors.UndefinedTable:
                stored = 0  # not created yet
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.communicate()
    assert 0 < stored < n, "the import must be killed midway for this test to mean anything"
    rerun = run_cli("usage", "import", str(path), "--db", pg_url, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    imported, duplicates = _numbers(rerun.stdout)
    assert imported + duplicates == n and duplicates >= stored
    assert _count(pg_url) == n


def test_an_unreachable_or_bad_database_is_named(tmp_path: Path) -> None:
    nobody = f"postgresql://flexvoice@127.0.0.1:{free_port()}/flexvoice"
    config = tmp_path / "flexvoice.yaml"
    config.write_text(f"storage: {{database: '{nobody}'}}\n")
    out = run_cli("--config", str(config), "accounts", "list")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "storage.database: cannot reach the PostgreSQL database" in out.stderr
    assert "(Connection refused); start the server" in out.stderr
    secret = "postgresql://flexvoice:hunter2@127.0.0.1:notaport/flexvoice"
    config.write_text(f"storage: {{database: '{secret}'}}\n")
    bad = run_cli("--config", str(config), "accounts", "list")
    assert bad.returncode == 2 and "storage.database" in bad.stderr
    assert "port is not a number" in bad.stderr and "hunter2" not in bad.stderr


def test_a_connection_the_server_cut_is_made_again_before_the_next_statement(
    pg_url: str,
) -> None:
    conn = postgres.connect(pg_url)
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    # The statement in flight when the server cut the connection fails (never resent: it
    # may have committed); the next one runs on a new connection.
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    assert conn.execute("SELECT pg_backend_pid()").fetchone()[0] != pid
    conn.close()
    with pytest.raises(psycopg.InterfaceError):
        conn.execute("SELECT 1")


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_db_check_and_migrate(tmp_path: Path, pg_url: str, engine: str) -> None:
    db = pg_url if engine == "postgresql" else str(tmp_path / "shared.db")
    fresh = run_cli("db", "check", "--db", db)
    assert fresh.returncode == 1, fresh.stderr
    assert "accounts: version 0 of 3 (3 to apply)" in fresh.stdout
    assert "run 'flexvoice db migrate'" in fresh.stdout
    done = run_cli("db", "migrate", "--db", db)
    assert done.returncode == 0, done.stderr
    assert "metering: version 1 of 1 (1 applied now)" in done.stdout
    again = run_cli("db", "migrate", "--db", db)
    assert "metering: version 1 of 1 (up to date)" in again.stdout
    ok = run_cli("db", "check", "--db", db)
    assert ok.returncode == 0 and f"shared store: {engine}, reachable" in ok.stdout

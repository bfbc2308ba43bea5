"""`flexvoice accounts` and `flexvoice usage` through the real command."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, cli_env, run_cli
from tests.metering_helpers import call, sms

pytestmark = pytest.mark.process  # the CLI, a node or Redis as real processes


def _write(path: Path, events: list[Any]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def _setup(tmp_path: Path) -> str:
    db = str(tmp_path / "usage.db")
    assert (
        run_cli("accounts", "create", "acme", "--tariff", "flexio-payu", "--db", db).returncode == 0
    )
    return db


def test_accounts_commands(tmp_path: Path) -> None:
    db = str(tmp_path / "usage.db")
    bad = run_cli("accounts", "create", "acme", "--tariff", "flexio-payg", "--db", db)
    assert bad.returncode == 2
    assert "no tariff 'flexio-payg'" in bad.stderr and "did you mean 'flexio-payu'" in bad.stderr
    assert "Traceback" not in bad.stderr
    ok = run_cli("accounts", "create", "acme", "--tariff", "flexio-payu", "--db", db)
    assert ok.returncode == 0, ok.stderr
    assert (
        run_cli("accounts", "suspend", "acme", "--db", db).stdout.strip()
        == "account acme is suspended"
    )
    listed = run_cli("accounts", "list", "--db", db).stdout.split()
    assert listed[:3] == ["acme", "flexio-payu", "suspended"]
    assert "is active" in run_cli("accounts", "activate", "acme", "--db", db).stdout
    ghost = run_cli("accounts", "suspend", "ghost", "--db", db)
    assert ghost.returncode == 2 and "no account 'ghost'" in ghost.stderr


def test_import_reports_counts_and_rejects_with_line_numbers(tmp_path: Path) -> None:
    db = _setup(tmp_path)
    bad_time = {**call("t", 60), "answered_at": "yesterday"}
    path = tmp_path / "usage.jsonl"
    _write(path, [call("a", 61), call("fr", 60, to="+33612345678"), bad_time])
    with path.open("a") as f:
        f.write("{not json\n")
        f.write(json.dumps({**call("g", 5), "account": "ghost"}) + "\n")
        f.write(json.dumps({**call("n", 5), "to": "+3247"}) + "\n")
        f.write(json.dumps({k: v for k, v in sms("s", "hi").items() if k != "sent_at"}) + "\n")
    out = run_cli("usage", "import", str(path), "--db", db)
    assert out.returncode == 1
    assert out.stdout.strip() == "imported 2, duplicates 0, rejected 5, unrated 1"
    err = out.stderr
    assert f"{path}:3: event 't:leg': answered_at: 'yesterday' is not an ISO 8601 time" in err
    assert f"{path}:4: not valid JSON" in err
    assert f"{path}:5: event 'g:leg': account: unknown account 'ghost'" in err
    assert f"{path}:6: event 'n:leg': to: '+3247' is not an E.164 number" in err
    assert f"{path}:7: event 's': sent_at: required field is missing" in err
    assert f"{path}:2: warning: event 'fr:leg' is unrated" in err
    again = run_cli("usage", "import", str(path), "--db", db)
    assert again.stdout.strip() == "imported 0, duplicates 2, rejected 5, unrated 0"


def test_export_csv_json_detail_is_byte_identical(tmp_path: Path) -> None:
    db = _setup(tmp_path)
    _write(tmp_path / "u.jsonl", [call("a", 61), call("b", 59), sms("s", "hello €")])
    assert run_cli("usage", "import", str(tmp_path / "u.jsonl"), "--db", db).returncode == 0
    csv1 = run_cli("usage", "export", "--month", "2024-03", "--db", db)
    assert csv1.returncode == 0, csv1.stderr
    assert csv1.stdout.splitlines() == [
        "account,month,service,quantity,unit,unit_price_eur,amount_eur",
        "acme,2024-03,sms,1,sms,0.095,0.10",
        "acme,2024-03,voice_out_mobile,3,minute,0.37,1.11",
        "acme,2024-03,subtotal,,,,1.21",
        "acme,2024-03,vat,1.21,EUR,0.21,0.25",
        "acme,2024-03,total,,,,1.46",
    ]
    out = tmp_path / "march.csv"
    written = run_cli("usage", "export", "--month", "2024-03", "--db", db, "-o", str(out))
    assert written.returncode == 0 and out.read_text() == csv1.stdout
    js = run_cli("usage", "export", "--month", "2024-03", "--format", "json", "--db", db)
    rows = json.loads(js.stdout)
    assert rows[-1] == {
        "account": "acme",
        "month": "2024-03",
        "service": "total",
        "quantity": "",
        "unit": "",
        "unit_price_eur": "",
        "amount_eur": "1.46",
    }
    detail = run_cli(
        "usage", "export", "--month", "2024-03", "--detail", "--account", "acme", "--db", db
    )
    assert detail.stdout.splitlines()[1:] == [
        "acme,2024-03,a:leg,voice_out_mobile,2,minute,0.37,0.740000,flexio-payu@2024-01-01,",
        "acme,2024-03,b:leg,voice_out_mobile,1,minute,0.37,0.370000,flexio-payu@2024-01-01,",
        "acme,2024-03,s,sms,1,sms,0.095,0.095000,flexio-payu@2024-01-01,",
    ]
    again = run_cli(
        "usage", "export", "--month", "2024-03", "--detail", "--account", "acme", "--db", db
    )
    assert again.stdout == detail.stdout


def test_export_and_rerate_refuse_bad_arguments(tmp_path: Path) -> None:
    db = _setup(tmp_path)
    month = run_cli("usage", "export", "--month", "2024-3", "--db", db)
    assert month.returncode == 2 and "must be written YYYY-MM" in month.stderr
    acc = run_cli("usage", "export", "--month", "2024-03", "--account", "acmee", "--db", db)
    assert acc.returncode == 2 and "did you mean 'acme'" in acc.stderr
    missing = run_cli("usage", "import", str(tmp_path / "nope.jsonl"), "--db", db)
    assert missing.returncode == 2 and "file not found" in missing.stderr
    rerate = run_cli("usage", "rerate", "--month", "2024-03", "--db", db)
    assert rerate.returncode == 0 and "0 changed" in rerate.stdout


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_killed_import_loses_and_doubles_nothing(tmp_path: Path, jobs: str) -> None:
    db = _setup(tmp_path)
    n = 30_000
    events = [
        call(f"k{i}", i % 200, start=f"2024-03-{1 + i % 28:02d}T10:00:00+01:00") for i in range(n)
    ]
    path = _write(tmp_path / "big.jsonl", events)
    cmd = [sys.executable, "-m", "flexvoice", "usage", "import", str(path), "--db", db]
    proc = subprocess.Popen(
        [*cmd, "--batch-size", "500", "--jobs", jobs],
        cwd=REPO,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stored = 0
    deadline = time.monotonic() + 60
    try:
        while stored == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
            try:
                with sqlite3.connect(db, timeout=5) as conn:
                    stored = conn.execute("SELECT count(*) FROM usage_events").fetchone()[0]
            except sqlite3.OperationalError:
                stored = 0  # table not created yet
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert 0 < stored < n, "the import must be killed midway for this test to mean anything"
    rerun = run_cli("usage", "import", str(path), "--db", db)
    assert rerun.returncode == 0, rerun.stderr
    imported, duplicates = (int(x.split()[-1]) for x in rerun.stdout.split(",")[:2])
    assert imported + duplicates == n and duplicates >= stored
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM usage_events").fetchone()[0] == n
    # Expected by hand: durations 0..199 s repeat; started minutes of d seconds = ceil(d/60).
    minutes = sum(-(-(i % 200) // 60) for i in range(n))
    export = run_cli("usage", "export", "--month", "2024-03", "--db", db).stdout.splitlines()
    assert f"acme,2024-03,voice_out_mobile,{minutes},minute,0.37," in "\n".join(export)


def test_parallel_import_matches_single_process(tmp_path: Path) -> None:
    events: list[Any] = [call(f"p{i}", i % 130) for i in range(700)]
    events[333] = {**events[333], "to": "+3247"}
    events.append(events[5])  # duplicate within the file
    path = _write(tmp_path / "p.jsonl", events)
    outputs = []
    for jobs in ("1", "2"):
        db = str(tmp_path / f"jobs{jobs}.db")
        run_cli("accounts", "create", "acme", "--tariff", "flexio-payu", "--db", db)
        out = run_cli(
            "usage", "import", str(path), "--db", db, "--jobs", jobs, "--batch-size", "100"
        )
        assert out.returncode == 1
        assert out.stdout.strip() == "imported 699, duplicates 1, rejected 1, unrated 0"
        assert f"{path}:334: event 'p333:leg': to: '+3247'" in out.stderr
        detail = run_cli("usage", "export", "--month", "2024-03", "--detail", "--db", db)
        outputs.append(detail.stdout)
    assert outputs[0] == outputs[1] and outputs[0].count("\n") == 700


def test_broken_tariff_file_is_reported_with_its_position(tmp_path: Path) -> None:
    tariffs = tmp_path / "tariffs"
    tariffs.mkdir()
    text = (REPO / "metering" / "tariffs" / "flexio-payu.yaml").read_text()
    (tariffs / "flexio-payu.yaml").write_text(text.replace('price: "0.095"', "price: 0.095", 1))
    config = tmp_path / "flexvoice.yaml"
    config.write_text(f"paths: {{tariffs: {tariffs}}}\nstorage: {{database: {tmp_path}/u.db}}\n")
    out = run_cli("--config", str(config), "usage", "export", "--month", "2024-03")
    assert out.returncode == 2
    line = next(i for i, t in enumerate(text.splitlines(), 1) if 'price: "0.095"' in t)
    assert out.stderr.startswith(f"flexvoice: {tariffs}/flexio-payu.yaml:{line}:")
    assert "write the amount as text in quotes" in out.stderr
    assert "Traceback" not in out.stderr


def test_rerate_after_the_tariff_gains_a_destination(tmp_path: Path) -> None:
    tariffs = tmp_path / "tariffs"
    tariffs.mkdir()
    for src in (REPO / "metering" / "tariffs").glob("*.yaml"):
        (tariffs / src.name).write_text(src.read_text())
    config = tmp_path / "flexvoice.yaml"
    config.write_text(f"paths: {{tariffs: {tariffs}}}\nstorage: {{database: {tmp_path}/u.db}}\n")
    cfg = ("--config", str(config))
    run_cli(*cfg, "accounts", "create", "acme", "--tariff", "flexio-payu")
    _write(tmp_path / "u.jsonl", [call("fr", 61, to="+33612345678"), call("be", 61)])
    imported = run_cli(*cfg, "usage", "import", str(tmp_path / "u.jsonl"))
    assert imported.returncode == 0 and "unrated 1" in imported.stdout
    before = run_cli(*cfg, "usage", "export", "--month", "2024-03")
    assert "acme,2024-03,subtotal,,,,0.74" in before.stdout
    assert "1 event(s) of 2024-03 are unrated" in before.stderr
    path = tariffs / "flexio-payu.yaml"
    path.write_text(path.read_text().replace("[BE mobile]", "[BE mobile, FR mobile]"))
    first = run_cli(*cfg, "usage", "rerate", "--month", "2024-03")
    assert first.stdout.strip() == "rerated 2 events of 2024-03: 1 changed, 0 still unrated"
    second = run_cli(*cfg, "usage", "rerate", "--month", "2024-03")
    assert "0 changed" in second.stdout
    after = run_cli(*cfg, "usage", "export", "--month", "2024-03")
    assert "acme,2024-03,voice_out_mobile,4,minute,0.37,1.48" in after.stdout
    assert "unrated" not in after.stdout + after.stderr

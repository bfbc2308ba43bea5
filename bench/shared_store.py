"""The usage feed into the shared store: events/s imported and rated into PostgreSQL (one
importer, and two importers at once as two nodes would), side by side with SQLite, the
embedded default, on the same events; the detail export's rows/s from each; and the call
registry's time per call (created, ringing, answered, ended: the statements a node runs on
its event loop for each call) on either engine.

    ./run bench shared_store [--events N] [--calls N]

PostgreSQL runs as a real server started here (initdb in a temporary folder, default
durability settings: fsync on), on loopback; it is stopped by its PID at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.metering import MONTH, generate
from flexvoice.accounts import create_account
from flexvoice.calls import CallRegistry
from flexvoice.metering.export import write_export
from flexvoice.metering.store import UsageStore
from flexvoice.metering.tariffs import load_tariffs
from flexvoice.storage import postgres, sqlite
from flexvoice.storage.engine import Connection
from tests.pgkit import running_postgres

REPO = Path(__file__).resolve().parent.parent
TARIFFS = REPO / "metering" / "tariffs"
ACCOUNTS = [f"acct{i:03d}" for i in range(200)]


def _store(conn: Connection) -> UsageStore:
    for acc in ACCOUNTS:
        create_account(conn, acc, "flexio-payu", TARIFFS)
    return UsageStore(conn, load_tariffs(TARIFFS))


def _import(store: UsageStore, events: Path) -> float:
    start = time.perf_counter()
    report = store.ingest_file(events, jobs=1)
    assert not report.rejected, report.rejected[:3]
    return time.perf_counter() - start


def _export(store: UsageStore, out: Path) -> tuple[int, float]:
    start = time.perf_counter()
    with out.open("w", newline="") as stream:
        rows = write_export(stream, store, MONTH, detail=True)
    return rows, time.perf_counter() - start


def _registry(conn: Connection, calls: int) -> float:
    """Seconds for `calls` calls through the call registry, each as a node reports it."""
    reg = CallRegistry(conn, node="bench")
    start = time.perf_counter()
    for i in range(calls):
        call = reg.create(
            account="acct000",
            direction="inbound",
            from_number=f"+3247{i:07d}",
            to_number="+3225551001",
            flow="support",
        ).id
        reg.call_event(call, "ringing", {"sip_status": 180})
        reg.call_event(call, "answered", {"sip_status": 200})
        reg.call_event(call, "step", {"step": "welcome", "verb": "play"})
        reg.call_event(call, "ended", {"sip_status": 200, "ended_by": "caller"})
    return time.perf_counter() - start


def _two_importers(url: str, files: list[Path]) -> float:
    """Two `flexvoice usage import` processes at once, as two nodes importing their spools."""
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "flexvoice", "usage", "import", str(f), "--db", url],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for f in files
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench shared_store")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=2_000)
    args = parser.parse_args(argv)
    n: int = args.events
    work = Path(tempfile.mkdtemp(prefix="flexvoice-bench-"))
    events = work / "events.jsonl"
    generate(events, n, ACCOUNTS)
    lines = events.read_text().splitlines(keepends=True)
    halves = [work / "node-a.jsonl", work / "node-b.jsonl"]
    halves[0].write_text("".join(lines[: n // 2]))
    halves[1].write_text("".join(lines[n // 2 :]))

    lite = _store(sqlite.connect(work / "usage.db"))
    lite_s = _import(lite, events)
    lite_rows, lite_export_s = _export(lite, work / "lite.csv")
    lite_calls_s = _registry(lite.conn, args.calls)

    with running_postgres(durable=True) as server:
        pg = _store(postgres.connect(server.new_database()))
        pg_s = _import(pg, events)
        pg_rows, pg_export_s = _export(pg, work / "pg.csv")
        assert lite_rows == pg_rows
        same = (work / "lite.csv").read_bytes() == (work / "pg.csv").read_bytes()
        again_s = _import(pg, events)  # every id known: all duplicates
        pg_calls_s = _registry(pg.conn, args.calls)
        two_url = server.new_database()
        _store(postgres.connect(two_url))
        two_s = _two_importers(two_url, halves)

    print(f"{n:,} usage events, import+rate, one process each:")
    print(f"  SQLite (embedded):     {n / lite_s:9,.0f} events/s ({lite_s:.1f} s)")
    print(f"  PostgreSQL (shared):   {n / pg_s:9,.0f} events/s ({pg_s:.1f} s), "
          f"{pg_s / lite_s:.2f}x SQLite's time")  # fmt: skip
    print(f"  PostgreSQL, 2 nodes at once (half each): {n / two_s:,.0f} events/s ({two_s:.1f} s)")
    print(f"  PostgreSQL, re-import (all duplicates): {n / again_s:,.0f} events/s")
    print(f"detail export: SQLite {lite_rows / lite_export_s:,.0f} rows/s, PostgreSQL "
          f"{pg_rows / pg_export_s:,.0f} rows/s; byte-identical: {same}")  # fmt: skip
    per = 1000 / args.calls
    print(f"call registry, {args.calls:,} calls (create, ringing, answered, step, ended):")
    print(f"  SQLite: {lite_calls_s * per:.2f} ms per call; PostgreSQL: {pg_calls_s * per:.2f} ms "
          f"per call ({pg_calls_s / lite_calls_s:.2f}x), on the event loop")  # fmt: skip
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores during the run)")
    for f in work.iterdir():
        f.unlink()
    os.rmdir(work)
    return 0 if same else 1

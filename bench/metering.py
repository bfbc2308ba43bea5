"""Metering throughput: import+rate events/s, detail CSV export rows/s, and the same number of
plain SQLite inserts as the floor ("storage limit") our overhead is measured against.

    ./run bench metering [--events N] [--keep DIR]

Events are generated as the engine writes them: a realistic mix (outbound calls to Belgian
mobile and fixed numbers, inbound calls, SMS, recordings, 2FA, conferences, reroutes) across
200 accounts and 20,000 distinct destinations, written to a JSONL file first so that the
import reads and parses text exactly like `flexvoice usage import`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import tempfile
import time
from pathlib import Path

from bench import REPO
from flexvoice.accounts import create_account
from flexvoice.metering.destinations import BadNumber, classify
from flexvoice.metering.export import write_export
from flexvoice.metering.store import UsageStore
from flexvoice.metering.tariffs import load_tariffs
from flexvoice.storage.sqlite import connect

MONTH = "2024-03"
BODY = "Your appointment is confirmed for tomorrow at 10:00. Reply STOP to opt out."


def _destinations(rng: random.Random, count: int) -> list[str]:
    """Two thirds Belgian mobile, one third Brussels fixed; all valid numbers."""
    out: list[str] = []
    while len(out) < count:
        if len(out) % 3:
            number = f"+3247{rng.randrange(10**7):07d}"
        else:
            number = f"+322{rng.randrange(2 * 10**6, 10**7):07d}"
        try:
            classify(number)
        except BadNumber:
            continue
        out.append(number)
    return out


def _time(day: int, sec: int) -> str:
    return f"2024-03-{day:02d}T{10 + sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}+01:00"


def generate(path: Path, n: int, accounts: list[str], seed: int = 5) -> None:
    rng = random.Random(seed)
    dests = _destinations(rng, 20_000)
    with path.open("w") as out:
        for i in range(n):
            acc = accounts[i % len(accounts)]
            day = 1 + i % 28
            sec = i % 3600
            t = _time(day, sec)
            r = i % 100
            to = dests[rng.randrange(len(dests))]
            ev: dict[str, object]
            if r < 55:
                dur = rng.randrange(0, 600)
                end = _time(day, sec + dur)
                ev = {
                    "id": f"call{i}:leg",
                    "account": acc,
                    "kind": "call",
                    "direction": "outbound" if r < 40 else "inbound",
                    "from": "+3225551234",
                    "to": to if r < 40 else "+3225551234",
                    "started_at": t,
                    "answered_at": None if r % 7 == 0 else t,
                    "ended_at": end,
                }
            elif r < 80:
                ev = {
                    "id": f"sms{i}",
                    "account": acc,
                    "kind": "sms",
                    "from": "Acme",
                    "to": to,
                    "sent_at": t,
                    "body": BODY,
                }
            elif r < 88:
                ev = {
                    "id": f"call{i}:rec-1",
                    "account": acc,
                    "kind": "recording",
                    "call_id": f"call{i}",
                    "started_at": t,
                    "ended_at": t.replace("+01:00", ".5+01:00"),
                }
            elif r < 96:
                ev = {
                    "id": f"otp{i}",
                    "account": acc,
                    "kind": "verification",
                    "to": to,
                    "channel": "sms",
                    "requested_at": t,
                }
            elif r < 98:
                ev = {
                    "id": f"conf{i}",
                    "account": acc,
                    "kind": "conference",
                    "room": "r",
                    "started_at": t,
                }
            else:
                ev = {
                    "id": f"call{i}:reroute",
                    "account": acc,
                    "kind": "reroute",
                    "number": "+3225551234",
                    "at": t,
                }
            out.write(json.dumps(ev))
            out.write("\n")


def _cpu() -> float:
    """CPU seconds of this process and of its children that have ended (import workers)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def plain_inserts(db: Path, path: Path) -> tuple[float, float]:
    """The floor: the same lines stored as (id, payload) rows, same batches, same pragmas."""
    conn = connect(db)
    conn.execute("CREATE TABLE plain (id TEXT PRIMARY KEY, payload TEXT NOT NULL)")
    start, cpu = time.perf_counter(), time.process_time()
    with path.open() as lines:
        batch: list[tuple[str, str]] = []
        for i, line in enumerate(lines):
            batch.append((str(i), line))
            if len(batch) == 5000:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("INSERT INTO plain VALUES (?, ?)", batch)
                conn.execute("COMMIT")
                batch = []
        if batch:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO plain VALUES (?, ?)", batch)
            conn.execute("COMMIT")
    elapsed, used = time.perf_counter() - start, time.process_time() - cpu
    conn.close()
    return elapsed, used


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench metering")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--jobs", type=int, default=0, help="import processes (default: as `usage import`)"
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep files in this folder")
    args = parser.parse_args(argv)
    n: int = args.events
    work = args.keep or Path(tempfile.mkdtemp(prefix="flexvoice-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    events = work / "events.jsonl"
    accounts = [f"acct{i:03d}" for i in range(200)]
    t0 = time.perf_counter()
    generate(events, n, accounts)
    size_mb = events.stat().st_size / 1e6
    print(f"generated {n:,} events ({size_mb:.0f} MB) in {time.perf_counter() - t0:.1f} s")

    for f in work.glob("*.db*"):
        f.unlink()
    conn = connect(work / "usage.db")
    tariffs_dir = REPO / "metering" / "tariffs"
    for acc in accounts:
        create_account(conn, acc, "flexio-payu", tariffs_dir)
    store = UsageStore(conn, load_tariffs(tariffs_dir))

    start, cpu = time.perf_counter(), _cpu()
    jobs = args.jobs or min(os.cpu_count() or 1, 4)  # as `flexvoice usage import` does
    report = store.ingest_file(events, jobs)
    import_s = time.perf_counter() - start
    import_cpu = _cpu() - cpu  # this process and its worker processes
    assert report.imported == n and not report.rejected, (report.imported, report.rejected[:3])
    unrated = len(report.unrated)
    print(
        f"import+rate: {n / import_s:,.0f} events/s ({import_s:.1f} s wall, "
        f"{jobs} import processes, {n / import_cpu:,.0f} events per CPU-second; unrated {unrated})"
    )

    out = work / "detail.csv"
    conn.close()  # a cold connection, as `flexvoice usage export` would have
    conn = connect(work / "usage.db")
    store = UsageStore(conn, load_tariffs(tariffs_dir))
    start = time.perf_counter()
    with out.open("w", newline="") as stream:
        rows = write_export(stream, store, MONTH, detail=True)
    export_s = time.perf_counter() - start
    print(f"detail CSV export: {rows / export_s:,.0f} rows/s ({rows:,} rows in {export_s:.1f} s)")

    start = time.perf_counter()
    with (work / "summary.csv").open("w", newline="") as stream:
        summary_rows = write_export(stream, store, MONTH)
    print(f"summary CSV export: {summary_rows} rows in {time.perf_counter() - start:.1f} s")
    conn.close()

    plain_s, plain_cpu = plain_inserts(work / "plain.db", events)
    print(
        f"plain SQLite insert of the same {n:,} lines: {n / plain_s:,.0f} rows/s ({plain_s:.1f} s)"
    )
    print(
        f"overhead of import+rate over plain inserts: {import_s / plain_s:.1f}x wall, "
        f"{import_cpu / plain_cpu:.1f}x CPU"
    )
    load = os.getloadavg()[0]
    print(f"(load average {load:.1f} on {os.cpu_count()} cores during the run)")
    if args.keep is None:
        for f in work.iterdir():
            f.unlink()
        os.rmdir(work)
    return 0

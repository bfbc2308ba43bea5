"""Call statistics: a year of calls in the rollups, then the grouped questions' p50/p99 and the
cost the rollups add to each ended call.

    ./run bench statistics [--calls N] [--accounts N] [--workers N] [--repeat N]
                           [--per-call N] [--keep DIR [--reuse | --generate-only]]
                           [--skip-questions]

1. A year (2025) of N calls (default 10 million) for N accounts (sizes fall off as 1/rank, so
   the biggest has about a fifth), each account with numbers, flows, a menu, queues and
   agents. Every call is one of a few hundred call shapes whose rollup rows come from the real
   code (`call_facts` on a scripted trace, then `deltas`), placed at a random moment weighted
   to office hours. A month at a time, the calls are drawn as integers and SQLite adds their
   shapes' rows up per bucket at every grain; `--workers` processes share the months out and
   their rows are copied into one database. The per-call path is measured in step 3.
2. Each question (the API's: a year by number and hour in Brussels, by date, by step, by
   queue, by outcome and weekday, Kathmandu by hour, Kolkata by flow and date, a month by
   date and hour ...) asked `repeat` times for the biggest account and a middling one: p50
   and p99. Side by side, the same question read from the 15-minute buckets only (what one
   fine grain would cost), and the ratio.
3. The real path for `per-call` calls on that database, in time order as a node sees them: the
   call registry writes each call's events; a third of the calls without statistics, a third
   with a collector writing each call as it ends, a third with one writing batches as a node
   does: the time each adds per call, and p50/p99 of the collector's own share.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.statistics_year import YEAR, generate, script, summary
from flexvoice.calls import CallRegistry
from flexvoice.statistics.collector import BATCH, Collector
from flexvoice.statistics.query import ask
from flexvoice.statistics.question import Question, make_question
from flexvoice.storage.sqlite import connect

TARGET_QUERY_S = 1.0
TARGET_CALL_MS = 1.0


# -- questions ---------------------------------------------------------------------------------
YEAR_S, YEAR_E, BXL = f"{YEAR}-01-01", f"{YEAR}-12-31", "Europe/Brussels"
QUESTIONS: list[tuple[str, str, str, str, str]] = [
    # (label, from, to, tz, group_by)
    ("year by number,hour (Brussels)", YEAR_S, YEAR_E, BXL, "number,hour"),
    ("year by date (Brussels)", YEAR_S, YEAR_E, BXL, "date"),
    ("year by outcome,dow (Brussels)", YEAR_S, YEAR_E, BXL, "outcome,dow"),
    ("year by step (funnel)", YEAR_S, YEAR_E, BXL, "step"),
    ("year by queue,month", YEAR_S, YEAR_E, BXL, "queue,month"),
    ("year by number (no time)", YEAR_S, YEAR_E, "UTC", "number"),
    ("year by hour (Kathmandu +5:45)", YEAR_S, YEAR_E, "Asia/Kathmandu", "hour"),
    ("year by flow,date (Kolkata +5:30)", YEAR_S, YEAR_E, "Asia/Kolkata", "flow,date"),
    ("March by date,hour (Brussels, DST)", f"{YEAR}-03-01", f"{YEAR}-03-31", BXL, "date,hour"),
    ("a day by hour", f"{YEAR}-06-02", f"{YEAR}-06-02", BXL, "hour"),
]
Timings = list[tuple[str, list[float], list[float], list[float]]]


def timed(work: Callable[[], Any], repeat: int, cpu: list[float] | None = None) -> list[float]:
    out = []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        work()
        out.append(time.perf_counter() - t)
        if cpu is not None:
            cpu.append(time.process_time() - c)
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run_questions(db: Path, account: str, repeat: int) -> Timings:
    conn = connect(db)
    out = []
    for label, start, end, tz, group in QUESTIONS:
        q: Question = make_question(account, start, end, tz, group)
        cpu: list[float] = []
        fast = timed(lambda q=q: ask(conn, q), repeat, cpu)
        fine = timed(lambda q=q: ask(conn, q, grains=(900,)), max(3, repeat // 4))
        out.append((label, fast, cpu, fine))
    conn.close()
    return out


# -- the per-call path -------------------------------------------------------------------------
MODES = ("without", "each", "batched")


def per_call(db: Path, n: int, account: str, seed: int = 7) -> dict[str, dict[str, float]]:
    """Play n calls into a registry on `db`, in turn without statistics, with a collector
    writing each call as it ends, and with one batching as a node does (interleaved, so that a
    shared machine's load falls on all alike): wall and CPU time per call."""
    rng = random.Random(seed)
    scripts = [script(rng) for _ in range(n)]
    # Calls come as they do on a node: one after another (about one every 3 s, the biggest
    # account's busy hours), from a Tuesday's morning on, to a dozen numbers and their flows.
    times, at = [], datetime(YEAR, 6, 3, 7, tzinfo=UTC)
    for _ in range(n):
        at += timedelta(seconds=rng.expovariate(1 / 3))
        times.append(at)
    numbers = [f"+322555{1000 + i}" for i in range(12)]
    clock = [datetime(YEAR, 1, 1, tzinfo=UTC)]
    costs: dict[str, list[float]] = {m: [] for m in MODES}

    def now() -> str:
        return clock[0].isoformat(timespec="milliseconds")

    conn = connect(db)
    registry = CallRegistry(conn, clock=now)
    collectors = {
        "each": Collector(conn, registry, on_added=[lambda _f, s: costs["each"].append(s)]),
        "batched": Collector(
            conn, registry, on_added=[lambda _f, s: costs["batched"].append(s)], batch=BATCH
        ),
    }
    spent = {m: [0.0, 0.0] for m in MODES}  # wall, CPU
    for i, (events, at) in enumerate(zip(scripts, times, strict=True)):
        mode = MODES[i % len(MODES)]
        registry.listeners[:] = [collectors[mode].listener] if mode in collectors else []
        wall, cpu = time.perf_counter(), time.process_time()
        clock[0] = at
        call = registry.create(
            account=account,
            direction="inbound",
            from_number="+3225550100",
            to_number=numbers[i % len(numbers)],
            flow=f"flow{i % len(numbers) % 4}",
        )
        for delay, kind, data in events:
            clock[0] += timedelta(seconds=delay)
            if kind in ("answered", "ended"):
                data = {**data, "at": clock[0].isoformat()}
            registry.call_event(call.id, kind, data)
        spent[mode][0] += time.perf_counter() - wall
        spent[mode][1] += time.process_time() - cpu
    wall, cpu = time.perf_counter(), time.process_time()
    collectors["batched"].flush()  # the last batch's write belongs to the batched calls
    spent["batched"][0] += time.perf_counter() - wall
    spent["batched"][1] += time.process_time() - cpu
    conn.close()
    out: dict[str, dict[str, float]] = {}
    for mode in MODES:
        played = len(range(MODES.index(mode), n, len(MODES)))
        out[mode] = {"wall": spent[mode][0] / played, "cpu": spent[mode][1] / played}
        if costs[mode]:
            out[mode] |= {"p50": pct(costs[mode], 50), "p99": pct(costs[mode], 99)}
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bench statistics")
    p.add_argument("--calls", type=int, default=10_000_000)
    p.add_argument("--accounts", type=int, default=50)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--per-call", type=int, default=3000)
    p.add_argument("--keep", type=Path, default=None, help="keep the database in this folder")
    p.add_argument("--reuse", action="store_true", help="with --keep: ask the kept year again")
    p.add_argument("--workers", type=int, default=2, help="processes generating the year")
    p.add_argument("--skip-questions", action="store_true", help="only the per-call cost")
    p.add_argument(
        "--generate-only",
        action="store_true",
        help="with --keep: stop after generating (run it under nice, ask with --reuse later)",
    )
    args = p.parse_args(argv)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="flexvoice-stats-"))
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "stats.db"
    if args.reuse and db.exists():
        g = summary(db)
        print(f"reusing {db}: {g['offered']:,} calls, {g['bytes'] / 1e6:,.0f} MB")
    else:
        for old in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            old.unlink(missing_ok=True)
        print(f"generating {args.calls:,} calls over {YEAR}, {args.accounts} accounts", flush=True)
        g = generate(db, args.calls, args.accounts, workers=args.workers, progress=True)
        rate = g["calls"] / g["seconds"]
        mb = g["bytes"] / 1e6
        print(
            f"  {g['calls']:,} calls in {g['seconds']:.0f} s ({rate:,.0f}/s;"
            f" CPU {g['cpu']:.0f} s in {g['workers']} processes;"
            f" drawing them {g['drawn']:.0f} s), {mb:,.0f} MB; load average"
            f" {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    print("  rows: " + ", ".join(f"{k} {v:,}" for k, v in g["rows"].items()), flush=True)
    if args.generate_only and args.keep is not None:
        return 0
    ok = True
    accounts = (("biggest", g["biggest"]), ("middling", g["middle"]))
    for who, (account, offered) in () if args.skip_questions else accounts:
        print(
            f"the {who} account ({account}, {offered:,} calls in the year), {args.repeat} times"
            " each: wall p50 / p99 | CPU p50 | 15-minute buckets only (wall p50) | ratio",
            flush=True,
        )
        for label, fast, cpu, fine in run_questions(db, account, args.repeat):
            p50, p99, base = pct(fast, 50), pct(fast, 99), pct(fine, 50)
            ok &= p99 < TARGET_QUERY_S
            print(
                f"  {label:<36} {p50 * 1000:7.1f} / {p99 * 1000:7.1f} ms"
                f" | {pct(cpu, 50) * 1000:6.1f} ms | {base * 1000:8.1f} ms | x{base / p50:5.1f}",
                flush=True,
            )
    r = per_call(db, args.per_call, g["biggest"][0])
    base = r["without"]
    print(
        f"per ended call ({args.per_call:,} calls through the call registry on that database,"
        f" a third each way): registry alone wall {base['wall'] * 1000:.3f} ms,"
        f" CPU {base['cpu'] * 1000:.3f} ms"
    )
    for mode, label in (("each", "written as each call ends"), ("batched", f"batches of {BATCH}")):
        wall = (r[mode]["wall"] - base["wall"]) * 1000
        cpu = (r[mode]["cpu"] - base["cpu"]) * 1000
        if mode == "batched":
            ok &= cpu < TARGET_CALL_MS
            ratio = (r["each"]["cpu"] - base["cpu"]) / max(1e-9, r[mode]["cpu"] - base["cpu"])
        print(
            f"  statistics {label:<26} added wall {wall:6.3f} ms | CPU {cpu:6.3f} ms"
            f" | collector p50 {r[mode]['p50'] * 1000:.3f} ms p99 {r[mode]['p99'] * 1000:.3f} ms"
        )
    print(f"  batched vs each call: x{ratio:.1f} less CPU (target < {TARGET_CALL_MS:g} ms)")
    verdict = "met" if ok else "NOT met"
    print(
        f"targets (p99 < {TARGET_QUERY_S:g} s per question, < {TARGET_CALL_MS:g} ms per call):"
        f" {verdict}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    if args.keep is None:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    return 0

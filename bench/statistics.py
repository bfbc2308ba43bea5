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
import multiprocessing
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

from flexvoice.calls import CallRegistry
from flexvoice.statistics.collector import BATCH, Collector
from flexvoice.statistics.facts import CallFacts, call_facts
from flexvoice.statistics.query import ask
from flexvoice.statistics.question import Question, make_question
from flexvoice.statistics.rollup import (
    CALLS,
    DAY_QUARTERS,
    FLOWS,
    TABLES,
    Table,
    deltas,
    ensure_schema,
)
from flexvoice.storage.sqlite import connect

YEAR = 2025
TARGET_QUERY_S = 1.0
TARGET_CALL_MS = 1.0

Event = tuple[float, str, dict[str, Any]]


# -- call shapes: scripted traces as the registry stores them ---------------------------------
def _step(name: str, verb: str) -> Event:
    return (0.5, "step", {"step": name, "verb": verb, "why": "", "from": None})


def _ended(after: float) -> Event:
    return (after, "ended", {"sip_status": 200, "cause": "normal", "outcome": "completed"})


def script(rng: random.Random) -> list[Event]:
    """One call: welcome, menu (1 sales desk, 2 support queue, 3 shop info), as callers do."""
    s: list[Event] = [(0.1, "answered", {"sip_status": 200}), _step("welcome", "play")]
    r = rng.random()
    if r < 0.08:
        return [*s, _ended(rng.uniform(1, 8))]  # left during the welcome
    s += [_step("menu", "menu")]
    if r < 0.16:
        return [*s, _ended(rng.uniform(1, 10))]  # left in the menu
    option = rng.choice("1122223")
    s += [(rng.uniform(1, 6), "menu", {"step": "menu", "option": option})]
    if option == "3":
        s += [_step("info", "play"), _step("bye", "hangup")]
        return [*s, (8, "hangup", {"step": "bye", "by": "flow"}), _ended(0.1)]
    if option == "1":
        s += [_step("sales", "dial"), (0, "dial_start", {"step": "sales", "targets": ["+1"]})]
        outcome = rng.choice(["completed"] * 6 + ["busy", "no-answer"])
        answered = "+1" if outcome == "completed" else None
        s += [(rng.uniform(2, 20), "dial_end", {"step": "sales", "outcome": outcome,
                                                "answered_target": answered})]  # fmt: skip
        if answered:
            return [*s, _ended(rng.expovariate(1 / 180))]
        s += [(0, "reroute", {"step": "sales", "why": "dial busy"}), _step("vm", "record")]
        return [*s, (30, "hangup", {"step": "vm", "by": "flow"}), _ended(0.1)]
    queue = rng.choice(["support", "support", "billing"])
    s += [_step("queue", "queue"), (0, "queue_enter", {"queue": queue, "sl": 20.0})]
    wait = rng.expovariate(1 / 45)
    if rng.random() < 0.25:
        return [*s, _ended(wait)]  # abandoned in the queue
    if wait > 240:
        s += [(240, "queue_leave", {"queue": queue, "result": "overflow"}),
              (0, "reroute", {"step": "queue", "why": "queue overflow"}),
              _step("vm", "record"), (20, "hangup", {"step": "vm", "by": "flow"})]  # fmt: skip
        return [*s, _ended(0.1)]
    s += [(wait, "dial_end", {"step": "queue", "outcome": "completed", "answered_target": "+2"}),
          (0, "queue_leave", {"queue": queue, "result": "answered"})]  # fmt: skip
    return [*s, _ended(rng.expovariate(1 / 240))]


class _Record:
    """A call registry record for the shapes (only what `call_facts` reads)."""

    def __init__(self, ended: str) -> None:
        self.id, self.account, self.direction = "c", "a", "inbound"
        self.from_number, self.to_number, self.status = "+3225550100", "+n", "completed"
        self.flow, self.created_at = "f", "2025-01-01T00:00:00+00:00"
        self.answered_at: str | None = "2025-01-01T00:00:00.100000+00:00"
        self.ended_at: str | None = ended


def shapes(
    count: int, rng: random.Random
) -> list[list[tuple[str, tuple[Any, ...], dict[str, int]]]]:
    """Call shapes as rollup deltas; a calls row's key holds the number and flow as
    placeholders, the others the flow, filled in per call."""
    out = []
    start = datetime(YEAR, 1, 1, tzinfo=UTC)
    for _ in range(count):
        now, events = start, []
        for delay, kind, data in script(rng):
            now += timedelta(seconds=delay)
            events.append({"at": now.isoformat(), "kind": kind, "data": data})
        facts: CallFacts = call_facts(_Record(now.isoformat()), events)  # type: ignore[arg-type]
        out.append([(t.name, key, fig) for t, key, fig in deltas(facts)])
    return out


# -- the year ----------------------------------------------------------------------------------
def generate(
    db: Path, calls: int, accounts: int, seed: int = 16, workers: int = 1, progress: bool = False
) -> dict[str, Any]:
    """The year in `db`. With several workers each process generates a run of months into a
    database of its own, and the others' rows are then copied into the first (in key order);
    a month's calls are the same however the months are shared out."""
    t0 = time.perf_counter()
    months = list(range(1, 13))
    if workers <= 1:
        parts = [_generate_months(db, calls, accounts, seed, months, progress)]
    else:
        share = -(-len(months) // workers)
        runs = [months[i : i + share] for i in range(0, len(months), share)]
        paths = [db] + [db.with_name(f"{db.stem}.part{i}{db.suffix}") for i in range(1, len(runs))]
        for path in paths:
            for old in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                old.unlink(missing_ok=True)
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(len(runs), mp_context=context) as pool:
            jobs = [
                pool.submit(_generate_months, path, calls, accounts, seed, run, progress)
                for path, run in zip(paths, runs, strict=True)
            ]
            parts = [job.result() for job in jobs]
    c0 = time.process_time()
    conn = connect(db)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    for i in range(1, len(parts)):
        path = db.with_name(f"{db.stem}.part{i}{db.suffix}")
        conn.execute("ATTACH DATABASE ? AS part", (str(path),))
        conn.execute("BEGIN")
        for table in TABLES:
            cols = ", ".join(table.columns)
            conn.execute(
                f"INSERT INTO main.{table.name} ({cols}) SELECT {cols} FROM part.{table.name}"
            )
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE part")
        path.unlink()
    conn.execute("PRAGMA analysis_limit=1000")  # a sample is enough for the planner
    conn.execute("ANALYZE")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    rows = {t.name: sum(p["rows"][t.name] for p in parts) for t in TABLES}
    return {
        "calls": sum(p["calls"] for p in parts),
        "seconds": time.perf_counter() - t0,
        "cpu": sum(p["cpu"] for p in parts) + time.process_time() - c0,
        "drawn": sum(p["drawn"] for p in parts),
        "workers": len(parts),
    } | summary(db, rows)


def _generate_months(
    db: Path, calls: int, accounts: int, seed: int, months: list[int], progress: bool
) -> dict[str, Any]:
    """Python draws each call (an account's number with its flow, a quarter hour, a shape) as
    three integers into a scratch table, a month at a time; SQLite then joins the month's
    calls with their shapes' rollup deltas and adds them up per 15-minute bucket in C
    (INSERT ... SELECT ... GROUP BY), and the coarser grains from those rows. A month per
    transaction keeps every sort small and appends each account's rows in key order."""
    rng = random.Random(seed)
    conn = connect(db)
    ensure_schema(conn)
    # A scratch database: no rollback journal, no fsync (the run is redone if it dies).
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-1000000")  # 1 GB: the month's sorts stay in memory
    names = [f"acct{i:03d}" for i in range(accounts)]
    weights = [1 / (i + 1) for i in range(accounts)]
    numbers = {
        a: [f"+32{2 + i % 8}{rng.randrange(10**7):07d}" for _ in range(max(2, 60 // (i + 1)))]
        for i, a in enumerate(names)
    }
    flow_of = {n: f"flow{j % 4}" for a in names for j, n in enumerate(numbers[a])}
    shape_list = shapes(400, rng)
    t0, c0 = time.perf_counter(), time.process_time()
    _shape_tables(conn, shape_list)
    pool = [(a, n, flow_of[n]) for a in names for n in numbers[a]]
    conn.execute("CREATE TEMP TABLE gen_pool (id INTEGER PRIMARY KEY, account, number, flow)")
    conn.executemany(
        "INSERT INTO gen_pool VALUES (?, ?, ?, ?)", [(i, *p) for i, p in enumerate(pool)]
    )
    conn.execute("CREATE TEMP TABLE gen_calls (pool INTEGER, bucket INTEGER, shape INTEGER)")
    # An account's calls spread evenly over its numbers: a number weighs its account's weight
    # shared among the account's numbers. Office hours weigh most (UTC+1).
    pool_cum = list(accumulate(weights[names.index(a)] / len(numbers[a]) for a, _, _ in pool))
    quarter_cum = list(
        accumulate(8 if 28 <= q < 72 else 3 if 24 <= q < 80 else 1 for q in range(96))
    )
    days = 365
    # Weekends get a third of a weekday's calls; the year gets exactly `calls`.
    weight = [1 / 3 if (d + 2) % 7 >= 5 else 1.0 for d in range(days)]  # 2025-01-01: Wed
    per_day = [int(calls * w / sum(weight)) for w in weight]
    for d in range(calls - sum(per_day)):
        per_day[d] += 1
    first = int(datetime(YEAR, 1, 1, tzinfo=UTC).timestamp()) // 900
    rows = {t.name: 0 for t in TABLES}
    drawn, done = 0.0, 0
    conn.execute("BEGIN")
    for month in months:
        t1 = time.perf_counter()
        draw = random.Random(seed * 100 + month)  # a month's calls whoever generates it
        month_days = [
            d for d in range(days) if (datetime(YEAR, 1, 1) + timedelta(days=d)).month == month
        ]
        for day in month_days:
            n, base = per_day[day], first + day * 96
            who = draw.choices(range(len(pool)), cum_weights=pool_cum, k=n)
            quarters = draw.choices(range(base, base + 96), cum_weights=quarter_cum, k=n)
            picks = draw.choices(range(len(shape_list)), k=n)
            conn.executemany(
                "INSERT INTO gen_calls VALUES (?, ?, ?)", zip(who, quarters, picks, strict=True)
            )
            done += n
        drawn += time.perf_counter() - t1
        for table in TABLES:
            for sql in _month_rows(table, (YEAR * 12 + month - 1) * 96):
                rows[table.name] += max(0, conn.execute(sql).rowcount)
            conn.execute("DROP TABLE gen_rows")
        conn.execute("DELETE FROM gen_calls")
        conn.execute("COMMIT")
        conn.execute("BEGIN")
        if progress:
            print(
                f"  {YEAR}-{month:02d}: {done:,} calls, {sum(rows.values()):,} rows,"
                f" {time.perf_counter() - t0:.0f} s, CPU {time.process_time() - c0:.0f} s,"
                f" load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    conn.execute("DROP TABLE gen_calls")
    conn.execute("COMMIT")
    conn.close()
    cpu = time.process_time() - c0
    return {"calls": done, "rows": rows, "cpu": cpu, "drawn": drawn}


Shape = list[tuple[str, tuple[Any, ...], dict[str, int]]]


def _shape_tables(conn: sqlite3.Connection, shape_list: list[Shape]) -> None:
    """gen_<table>: each shape's rollup deltas, with the key columns the call does not fill
    (the direction for calls and flows rows; queue, step, verb, option for the others)."""
    for table in TABLES:
        own = _own_dims(table)
        cols = [
            "shape INTEGER",
            *(f"{d} TEXT" for d in own),
            *(f"{f} INTEGER" for f in table.figures),
        ]
        conn.execute(f"CREATE TEMP TABLE gen_{table.name} ({', '.join(cols)})")
        values = []
        for i, shape in enumerate(shape_list):
            for name, key, figures in shape:
                if name != table.name:
                    continue
                mine = key[:1] if table in (CALLS, FLOWS) else key[1:]
                values.append((i, *mine, *(figures.get(f, 0) for f in table.figures)))
        marks = ", ".join("?" for _ in cols)
        conn.executemany(f"INSERT INTO gen_{table.name} VALUES ({marks})", values)
        conn.execute(f"CREATE INDEX gen_{table.name}_shape ON gen_{table.name} (shape)")


def _own_dims(table: Table) -> tuple[str, ...]:
    return table.dims[:1] if table in (CALLS, FLOWS) else table.dims[1:]


def _month_rows(table: Table, quarters_base: int) -> list[str]:
    """The month's rows of `table`: every drawn call joined with its shape's deltas, added up
    per 15-minute bucket into a scratch table, then the rollup rows at each grain from it (the
    day-quarter grain's bucket is the month's index * 96 plus the quarter hour of the day)."""
    own = _own_dims(table)
    pick = {d: f"d.{d}" for d in own} | {"number": "p.number", "flow": "p.flow"}
    dims = ", ".join(table.dims)
    sums = ", ".join(f"SUM({f})" for f in table.figures)
    cols = ", ".join(table.columns)
    out = [
        f"CREATE TEMP TABLE gen_rows AS SELECT p.account AS account, c.bucket AS bucket,"
        f" {', '.join(f'{pick[d]} AS {d}' for d in table.dims)},"
        f" {', '.join(f'SUM(d.{f}) AS {f}' for f in table.figures)}"
        f" FROM gen_calls c JOIN gen_pool p ON p.id = c.pool"
        f" JOIN gen_{table.name} d ON d.shape = c.shape"
        f" GROUP BY p.account, c.bucket, {', '.join(pick[d] for d in table.dims)}",
        f"INSERT INTO {table.name} ({cols}) SELECT account, 900, bucket, {dims},"
        f" {', '.join(table.figures)} FROM gen_rows",
    ]
    for grain, bucket in (
        (3600, "bucket / 4"),
        (86400, "bucket / 96"),
        (DAY_QUARTERS, f"{quarters_base} + bucket % 96"),
    ):
        out.append(
            f"INSERT INTO {table.name} ({cols}) SELECT account, {grain}, {bucket}, {dims},"
            f" {sums} FROM gen_rows GROUP BY account, {bucket}, {dims}"
        )
    return out


def summary(db: Path, sizes: dict[str, int] | None = None) -> dict[str, Any]:
    conn = connect(db)
    if sizes is None:
        sizes = {
            t.name: conn.execute(f"SELECT COUNT(*) FROM {t.name}").fetchone()[0] for t in TABLES
        }
    big = conn.execute(
        "SELECT account, SUM(offered) FROM stats_flows WHERE grain = 86400 GROUP BY account"
        " ORDER BY 2 DESC"
    ).fetchall()
    conn.close()
    return {
        "rows": sizes,
        "bytes": db.stat().st_size + _size(Path(str(db) + "-wal")),
        "biggest": (big[0][0], big[0][1]),
        "middle": (big[len(big) // 2][0], big[len(big) // 2][1]),
        "offered": sum(b[1] for b in big),
    }


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


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

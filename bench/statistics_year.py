"""The statistics benchmark's year: call shapes from scripted traces, and a year of calls
written into the rollups a month at a time, in one or several processes (bench/statistics.py
asks the questions and measures the per-call path)."""

from __future__ import annotations

import multiprocessing
import os
import random
import sqlite3
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

from flexvoice.statistics.facts import CallFacts, call_facts
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

"""Grouped questions over the rollups: a period in a time zone, grouped by number, flow,
direction, queue, step, outcome, quarter hour of day, hour of day, day of week, date or month.

The period is cut where the zone's UTC offset changes (daylight saving time), and each piece
is read at the coarsest grain that is still exact (flexvoice.statistics.period). Local quarter
hours, hours and days are computed in SQL from the bucket and the piece's offset.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from flexvoice.clock import WEEKDAYS
from flexvoice.statistics.facts import OUTCOMES
from flexvoice.statistics.figures import call_figures, queue_figures, step_figures
from flexvoice.statistics.period import offset_pieces, plan, zone
from flexvoice.statistics.question import Question
from flexvoice.statistics.rollup import CALLS, DAY_QUARTERS, FLOWS, MENU, QUEUES, STEPS, Table


@dataclass
class Answer:
    question: Question
    source: str  # "calls", "queues", "steps", "outcomes"
    rows: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)


# -- reading ----------------------------------------------------------------------------------
def _dim_sql(dim: str, grain: int, offset: int) -> str:
    if grain == DAY_QUARTERS:  # time of day only (period.plan): seconds into the local day
        of_day = f"(((bucket % 96) * 900 + {offset} + 86400) % 86400)"
        return {"quarter": f"({of_day} / 900)", "hour": f"({of_day} / 3600)"}.get(dim, dim)
    local = f"(bucket * {grain} + {offset})"
    return {
        "quarter": f"(({local} % 86400) / 900)",
        "hour": f"(({local} % 86400) / 3600)",
        "dow": f"((({local} / 86400) + 3) % 7)",
        "date": f"({local} / 86400)",
        "month": f"({local} / 86400)",
    }.get(dim, dim)


def _table_rows(
    conn: sqlite3.Connection,
    q: Question,
    table: Table,
    dims: tuple[str, ...],
    grains: tuple[int, ...] | None = None,
) -> Iterator[tuple[tuple[Any, ...], dict[str, int]]]:
    filters, args = ["account = ?"], [q.account]
    for name in ("number", "flow", "queue", "direction"):
        value = getattr(q, name)
        if value is not None and name in table.key:
            filters.append(f"{name} = ?")
            args.append(value)
    tz = zone(q.tz)
    sums = ", ".join(f"SUM({f})" for f in table.figures)
    for a, b, offset in offset_pieces(q.start, q.end, tz):
        for piece in plan(a, b, q.group_by, offset, grains):
            exprs = [_dim_sql(d, piece.grain, offset) for d in dims]
            select = ", ".join([*exprs, sums])
            if piece.only:  # integers of our own making: written into the statement
                where = f"grain = ? AND bucket IN ({', '.join(map(str, piece.only))})"
                bounds: tuple[int, ...] = (piece.grain,)
            else:
                where, bounds = "grain = ? AND bucket >= ? AND bucket < ?", piece[:3]
                if piece.skip_hour is not None:
                    where += f" AND bucket % 24 <> {int(piece.skip_hour)}"
            sql = f"SELECT {select} FROM {table.name} WHERE {where} AND {' AND '.join(filters)}"
            if exprs:
                sql += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(exprs)))
            cursor = conn.cursor()
            cursor.row_factory = None  # plain tuples: rows by the hundred thousand
            for r in cursor.execute(sql, (*bounds, *args)):
                values = tuple(r)
                if values[len(dims)] is None:
                    continue  # no rows: SUM() over nothing
                key = tuple(_label(d, v) for d, v in zip(dims, values, strict=False))
                yield key, dict(zip(table.figures, values[len(dims) :], strict=True))


def _label(dim: str, value: Any) -> Any:
    if dim == "quarter":
        h, q = divmod(int(value), 4)
        return f"{h:02d}:{q * 15:02d}"
    if dim == "dow":
        return WEEKDAYS[int(value)]
    if dim in ("date", "month"):
        day = date(1970, 1, 1) + timedelta(days=int(value))
        return day.isoformat() if dim == "date" else day.isoformat()[:7]
    return value


def _sum_into(
    acc: dict[tuple[Any, ...], dict[str, int]],
    rows: Iterator[tuple[tuple[Any, ...], dict[str, int]]],
    prefix: str = "",
) -> None:
    for key, figures in rows:
        row = acc.setdefault(key, {})
        for name, value in figures.items():
            row[prefix + name] = row.get(prefix + name, 0) + int(value or 0)


def ask(conn: sqlite3.Connection, q: Question, grains: tuple[int, ...] | None = None) -> Answer:
    """Answer `q`; `grains` forces the buckets read (the benchmark compares 15 minutes only)."""
    dims = q.group_by
    calls = CALLS if "number" in dims or q.number is not None else FLOWS
    acc: dict[tuple[Any, ...], dict[str, int]] = {}
    if "step" in dims:
        source = "steps"
        _sum_into(acc, _table_rows(conn, q, STEPS, (*dims, "verb"), grains))
        options: dict[tuple[Any, ...], dict[str, int]] = {}
        _sum_into(options, _table_rows(conn, q, MENU, (*dims, "option"), grains))
        rows = []
        for key, figures in acc.items():
            row = dict(zip((*dims, "verb"), key, strict=True))
            chosen = {str(k[-1]): v["chosen"] for k, v in options.items() if k[:-1] == key[:-1]}
            rows.append({**row, **step_figures(figures), "options": dict(sorted(chosen.items()))})
        totals = step_figures(_total(acc.values()))
    elif "outcome" in dims:
        source = "outcomes"
        rest = tuple(d for d in dims if d != "outcome")
        _sum_into(acc, _table_rows(conn, q, calls, rest, grains))
        rows = []
        for key, figures in acc.items():
            base = dict(zip(rest, key, strict=True))
            for outcome in OUTCOMES:
                if figures.get(outcome):
                    rows.append({**base, "outcome": outcome, "calls": figures[outcome]})
        totals = {"calls": sum(r["calls"] for r in rows)}
        order = list(dims)
        rows = [{d: r[d] for d in order} | {"calls": r["calls"]} for r in rows]
    elif "queue" in dims or q.queue is not None:
        source = "queues"
        _sum_into(acc, _table_rows(conn, q, QUEUES, dims, grains), "queue_")
        rows = [{**dict(zip(dims, k, strict=True)), **queue_figures(f)} for k, f in acc.items()]
        totals = queue_figures(_total(acc.values()))
    else:
        source = "calls"
        _sum_into(acc, _table_rows(conn, q, calls, dims, grains))
        # Queue figures are kept per flow: they join the calls' rows unless those are per
        # number or direction.
        per_flow = (
            not {"number", "direction"} & set(dims) and q.number is None and q.direction is None
        )
        if per_flow:
            _sum_into(acc, _table_rows(conn, q, QUEUES, dims, grains), "queue_")

        def both(f: dict[str, int]) -> dict[str, Any]:
            return {**call_figures(f), **(queue_figures(f) if per_flow else {})}

        rows = [{**dict(zip(dims, k, strict=True)), **both(f)} for k, f in acc.items()]
        totals = both(_total(acc.values()))
    rows.sort(key=lambda r: tuple(_sortable(r.get(d)) for d in (*dims, "verb", "outcome")))
    return Answer(q, source, rows, totals)


def _sortable(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, int):
        return (1, value)
    if isinstance(value, str) and value in WEEKDAYS:
        return (1, WEEKDAYS.index(value))
    if isinstance(value, str) and value in OUTCOMES:
        return (1, OUTCOMES.index(value))
    return (2, str(value))


def _total(rows: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for figures in rows:
        for name, value in figures.items():
            out[name] = out.get(name, 0) + value
    return out


# -- output -----------------------------------------------------------------------------------
def as_json(answer: Answer) -> dict[str, Any]:
    q = answer.question
    return {
        "account": q.account,
        "from": q.start.isoformat(),
        "to": q.end.isoformat(),
        "tz": q.tz,
        "group_by": list(q.group_by),
        "filters": {
            k: v
            for k in ("number", "flow", "queue", "direction")
            if (v := getattr(q, k)) is not None
        },
        "view": answer.source,
        "rows": answer.rows,
        "totals": answer.totals,
    }


def as_csv(answer: Answer) -> str:
    out = io.StringIO()
    rows = answer.rows
    columns: list[str] = list(rows[0]) if rows else list(answer.question.group_by)
    if not rows:
        columns += list(answer.totals)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return " ".join(f"{k}:{v}" for k, v in value.items())
    return str(value)

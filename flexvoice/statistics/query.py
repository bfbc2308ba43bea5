"""Grouped questions over the rollups: a period in a time zone, grouped by number, flow,
direction, queue, step, outcome, hour of day, day of week, date or month.

The period is cut where the zone's UTC offset changes (daylight saving time), and each piece
is read at the coarsest grain that is still exact: a whole UTC day only when no local hour,
day or month is asked for (or the zone is UTC), an hour when the offset is whole hours, else
15 minutes. Local hours and days are computed in SQL from the bucket and the piece's offset.
"""

from __future__ import annotations

import csv
import io
import math
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flexvoice.statistics.facts import OUTCOMES
from flexvoice.statistics.rollup import (
    CALLS,
    FLOWS,
    GRAINS,
    HIST,
    MENU,
    QUEUES,
    STEPS,
    WAIT_EDGES,
    Table,
)

TIME_DIMS = ("hour", "dow", "date", "month")
GROUPS = ("number", "flow", "direction", "queue", "step", "outcome", *TIME_DIMS)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_DAYS = 3 * 366
STEP = 900


class QueryError(ValueError):
    """A question the statistics cannot answer, said so the asker can fix it."""


@dataclass(frozen=True)
class Question:
    account: str
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    tz: str = "UTC"
    group_by: tuple[str, ...] = ()
    number: str | None = None
    flow: str | None = None
    queue: str | None = None
    direction: str | None = None


@dataclass
class Answer:
    question: Question
    source: str  # "calls", "queues", "steps", "outcomes"
    rows: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)


# -- the period -------------------------------------------------------------------------------
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise QueryError(
            f"tz: '{name}' is not a time zone; use an IANA name such as Europe/Brussels, "
            "America/New_York, Asia/Kathmandu or UTC"
        ) from None


def parse_moment(text: str, tz: ZoneInfo, what: str, end: bool) -> datetime:
    """A date (whole day: `from` starts it, `to` includes it) or a date and time (local to
    `tz` unless it carries an offset; `to` is then exclusive)."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            if end:
                day += timedelta(days=1)
            moment = datetime.combine(day, time(0), tz)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=tz)
    except ValueError:
        raise QueryError(
            f"{what}: '{text}' is not a date or date and time; write 2026-03-31 or "
            "2026-03-31T08:00 (local to tz)"
        ) from None
    return moment.astimezone(UTC)


def _aligned(moment: datetime, text: str, what: str) -> None:
    if int(moment.timestamp()) % STEP:
        raise QueryError(
            f"{what}: {text} does not fall on a quarter hour; statistics are kept per 15 "
            "minutes, so start and end the period on :00, :15, :30 or :45"
        )


def offset_pieces(start: datetime, end: datetime, tz: ZoneInfo) -> list[tuple[int, int, int]]:
    """[start, end) cut where the zone's UTC offset changes: (from, to, offset) in seconds."""

    def offset(t: int) -> int:
        off = datetime.fromtimestamp(t, UTC).astimezone(tz).utcoffset()
        return int(off.total_seconds()) if off is not None else 0

    a, b = int(start.timestamp()), int(end.timestamp())
    pieces: list[tuple[int, int, int]] = []
    cur, cur_off = a, offset(a)
    probe = a
    while probe < b:
        nxt = min(probe + 6 * 3600, b)
        if nxt < b and offset(nxt) == cur_off:
            probe = nxt
            continue
        if nxt == b and offset(b - STEP) == cur_off:
            break
        # The change lies in (probe, nxt]: find the first quarter hour with the new offset.
        lo, hi = probe // STEP, -(-nxt // STEP)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if offset(mid * STEP) == cur_off:
                lo = mid
            else:
                hi = mid
        change = hi * STEP
        if change >= b:
            break
        pieces.append((cur, change, cur_off))
        cur, cur_off, probe = change, offset(change), change
    pieces.append((cur, b, cur_off))
    for _, _, off in pieces:
        if off % STEP:
            sign = "-" if off < 0 else "+"
            h, rest = divmod(abs(off), 3600)
            raise QueryError(
                f"tz: {tz.key} used the offset {sign}{h}:{rest // 60:02d}:{rest % 60:02d} in "
                "this period, which is not a whole quarter hour; statistics are kept per 15 "
                "minutes, so ask in UTC for that period"
            )
    return pieces


def cover(a: int, b: int, grains: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """[a, b) as (grain, first bucket, end bucket) pieces, the coarsest grain first."""
    if a >= b or not grains:
        return []
    g, rest = grains[0], grains[1:]
    lo, hi = -(-a // g) * g, b // g * g
    if lo >= hi:
        return cover(a, b, rest)
    return [*cover(a, lo, rest), (g, lo // g, hi // g), *cover(hi, b, rest)]


def grains_for(group_by: tuple[str, ...], offset: int) -> tuple[int, ...]:
    finest = 86400 * 31
    if "hour" in group_by:
        finest = 3600
    elif any(d in group_by for d in ("dow", "date", "month")):
        finest = 86400
    usable = [g for g in GRAINS if g <= finest and (finest > 86400 or offset % g == 0)]
    return tuple(sorted(usable, reverse=True))


# -- the question -----------------------------------------------------------------------------
def make_question(
    account: str,
    start: str,
    end: str,
    tz: str = "UTC",
    group_by: str = "",
    number: str | None = None,
    flow: str | None = None,
    queue: str | None = None,
    direction: str | None = None,
) -> Question:
    zi = zone(tz)
    a = parse_moment(start, zi, "from", end=False)
    b = parse_moment(end, zi, "to", end=True)
    if b <= a:
        raise QueryError(f"to ({end}) must come after from ({start})")
    if b - a > timedelta(days=MAX_DAYS):
        raise QueryError(f"the period is longer than {MAX_DAYS} days; ask for less at a time")
    offset_pieces(a, b, zi)  # a zone whose offset was not in quarter hours is said first
    _aligned(a, start, "from")
    _aligned(b, end, "to")
    dims = tuple(d.strip() for d in group_by.split(",") if d.strip())
    for d in dims:
        if d not in GROUPS:
            raise QueryError(f"group_by: '{d}' is not a grouping; use any of {', '.join(GROUPS)}")
    if len(set(dims)) != len(dims):
        raise QueryError("group_by: a grouping is named twice")
    queued = "queue" in dims or queue is not None
    if sum((queued, "step" in dims, "outcome" in dims)) > 1:
        raise QueryError(
            "group_by: queue (or the queue filter), step and outcome are different views of a "
            "call; ask for one of them at a time"
        )
    if (queued or "step" in dims) and (
        {"number", "direction"} & set(dims) or number is not None or direction is not None
    ):
        raise QueryError(
            "number, direction: queue and step figures are kept per flow, not per number; "
            "group or filter them by flow"
        )
    if direction not in (None, "inbound", "outbound"):
        raise QueryError("direction: use inbound or outbound")
    return Question(account, a, b, tz, dims, number, flow, queue, direction)


# -- reading ----------------------------------------------------------------------------------
def _dim_sql(dim: str, grain: int, offset: int) -> str:
    local = f"(bucket * {grain} + {offset})"
    return {
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
        for grain, lo, hi in cover(a, b, grains or grains_for(q.group_by, offset)):
            exprs = [_dim_sql(d, grain, offset) for d in dims]
            select = ", ".join([*exprs, sums])
            sql = (
                f"SELECT {select} FROM {table.name} WHERE grain = ? AND bucket >= ?"
                f" AND bucket < ? AND {' AND '.join(filters)}"
            )
            if exprs:
                sql += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(exprs)))
            cursor = conn.cursor()
            cursor.row_factory = None  # plain tuples: rows by the hundred thousand
            for r in cursor.execute(sql, (grain, lo, hi, *args)):
                values = tuple(r)
                if values[len(dims)] is None:
                    continue  # no rows: SUM() over nothing
                key = tuple(_label(d, v) for d, v in zip(dims, values, strict=False))
                yield key, dict(zip(table.figures, values[len(dims) :], strict=True))


def _label(dim: str, value: Any) -> Any:
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


# -- figures (named and defined once; the README lists the same) ------------------------------
def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _avg_s(ms: int, n: int) -> float | None:
    return round(ms / n / 1000, 1) if n else None


def call_figures(f: dict[str, int]) -> dict[str, Any]:
    g = f.get
    offered, answered = g("offered", 0), g("answered", 0)
    return {
        "offered": offered,
        "answered": answered,
        "abandoned": g("abandoned", 0),
        "busy": g("busy", 0),
        "no_answer": g("no_answer", 0),
        "failed": g("failed", 0),
        "redirected": g("redirected", 0),
        "ended_in_flow": g("ended_in_flow", 0),
        "rerouted": g("rerouted", 0),
        "answer_rate": _ratio(answered, offered),
        "abandon_rate": _ratio(g("abandoned", 0), offered),
        "avg_speed_of_answer_s": _avg_s(g("answer_ms", 0), answered),
        "talk_s": round(g("talk_ms", 0) / 1000, 1),
        "avg_talk_s": _avg_s(g("talk_ms", 0), answered),
        "webhook_failures": g("webhook_failures", 0),
    }


def queue_figures(f: dict[str, int]) -> dict[str, Any]:
    g = f.get
    entered, answered = g("queue_entered", 0), g("queue_answered", 0)
    return {
        "queue_entered": entered,
        "queue_answered": answered,
        "queue_abandoned": g("queue_abandoned", 0),
        "queue_overflow": g("queue_overflow", 0),
        "avg_wait_s": _avg_s(g("queue_wait_ms", 0), entered),
        "p90_wait_s": p90([g("queue_" + h, 0) for h in HIST]),
        "avg_queue_answer_s": _avg_s(g("queue_answered_wait_ms", 0), answered),
        "service_level": _ratio(g("queue_in_sl", 0), entered),
        "queue_talk_s": round(g("queue_talk_ms", 0) / 1000, 1),
    }


def step_figures(f: dict[str, int]) -> dict[str, Any]:
    entered = f.get("entered", 0)
    return {
        "entered": entered,
        "abandoned": f.get("abandoned", 0),
        "ended": f.get("ended", 0),
        "drop_off_rate": _ratio(f.get("abandoned", 0), entered),
    }


def p90(histogram: list[int]) -> float | None:
    """The upper edge of the bin that holds the 90th percentile wait (an hour or more: 3600)."""
    n = sum(histogram)
    if not n:
        return None
    need = math.ceil(0.9 * n)
    seen = 0
    for i, count in enumerate(histogram):
        seen += count
        if seen >= need:
            return float(WAIT_EDGES[i]) if i < len(WAIT_EDGES) else float(WAIT_EDGES[-1])
    return float(WAIT_EDGES[-1])


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

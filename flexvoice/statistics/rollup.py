"""Rollups: the call statistics kept up to date as calls end, so a question about a year is
answered from a few hundred thousand pre-added rows instead of millions of calls.

Each ended call adds its facts (flexvoice.statistics.facts) to five tables - calls per
direction, number and flow, the same per direction and flow only, queues, steps and menu
options per flow - at three
grains in UTC: 15 minutes, 1 hour and 1 day. Every time zone's offset is a multiple of
15 minutes (Nepal +5:45, India +5:30, Chatham +12:45), so 15-minute buckets answer any local
hour and day exactly; hours and days only make long periods cheaper (flexvoice.statistics.query
picks the coarsest grain that is still exact for the zone and the grouping).

Counting is exactly once (flexvoice.statistics.collector): a call is added in the same
transaction that writes its id into `stats_applied`, and a call already there is skipped. At
start a node adds the calls that ended in the last days without being added, so a crash neither
loses nor doubles a call. Durations are kept in integer milliseconds, so sums are
exact and a recomputation gives the very same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from flexvoice.statistics.facts import CallFacts, call_facts, is_own_call
from flexvoice.storage.engine import Connection, PerEngine, Script, both
from flexvoice.storage.migrate import migrate

GRAINS = (900, 3600, 86400)  # seconds: 15 minutes, 1 hour, 1 day (UTC)
# A fourth grain for time-of-day questions over long periods ("which number rings at lunch
# time, this year"): the quarter hour of the UTC day, per UTC month - one row per number and
# quarter hour a month (96) instead of one per quarter hour of the year (2,880 a month).
# Its code in the `grain` column is 1 (the others are their length in seconds); its bucket
# is month_index * 96 + quarter of the day.
DAY_QUARTERS = 1
# Upper edges (seconds) of the queue-wait histogram's bins; the last bin is "an hour or more".
WAIT_EDGES = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 450, 600, 900, 1200, 1800,
              2700, 3600)  # fmt: skip
HIST = tuple(f"h{i}" for i in range(len(WAIT_EDGES) + 1))
TIME_KEY = ("account", "grain", "bucket")


@dataclass(frozen=True)
class Table:
    name: str
    dims: tuple[str, ...]  # after account, grain and bucket
    figures: tuple[str, ...]

    @property
    def key(self) -> tuple[str, ...]:
        return TIME_KEY + self.dims

    @property
    def columns(self) -> tuple[str, ...]:
        return self.key + self.figures


# Calls are kept per number; queues, steps and menu options per flow only: they describe the
# flow, and a number in their key would make about one row per call at 15 minutes.
CALLS = Table(
    "stats_calls",
    ("direction", "number", "flow"),
    (
        "offered", "answered", "abandoned", "busy", "no_answer", "failed", "redirected",
        "ended_in_flow", "rerouted", "answer_ms", "talk_ms", "webhook_failures",
    ),
)  # fmt: skip
# The same figures without the number: what most questions ask (by hour, date, outcome ...)
# read one row per flow and bucket instead of one per number.
FLOWS = Table("stats_flows", ("direction", "flow"), CALLS.figures)
QUEUES = Table(
    "stats_queues",
    ("flow", "queue"),
    (
        "entered", "answered", "abandoned", "overflow", "failed", "in_sl", "wait_ms",
        "answered_wait_ms", "talk_ms", *HIST,
    ),
)  # fmt: skip
STEPS = Table("stats_steps", ("flow", "step", "verb"), ("entered", "abandoned", "ended"))
MENU = Table("stats_menu", ("flow", "step", "option"), ("chosen",))
TABLES = (CALLS, FLOWS, QUEUES, STEPS, MENU)


def _create(table: Table) -> str:
    text = {"account", "direction", "number", "flow", "queue", "step", "verb", "option"}
    cols = [f"{c} {'TEXT' if c in text else 'INTEGER'} NOT NULL" for c in table.key]
    cols += [f"{c} INTEGER NOT NULL DEFAULT 0" for c in table.figures]
    return (
        f"CREATE TABLE {table.name} ({', '.join(cols)}, PRIMARY KEY ({', '.join(table.key)}))"
        " WITHOUT ROWID;"
    )


_APPLIED = """
    CREATE TABLE stats_applied (
        call_id TEXT PRIMARY KEY,
        ended_at TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX stats_applied_ended ON stats_applied (ended_at);
    """
_FIRST = "\n".join(_create(t) for t in TABLES) + _APPLIED
# PostgreSQL keeps every table by its primary key's index (no WITHOUT ROWID to ask for).
MIGRATIONS: list[Script] = [both(_FIRST, _FIRST.replace(" WITHOUT ROWID", ""))]


def fill_day_quarters(table: Table, postgresql: bool = False) -> str:
    """The day-quarter grain made from the 15-minute rows (a database kept before it)."""
    ts = "bucket * 900"
    if postgresql:
        utc = f"(to_timestamp({ts}) AT TIME ZONE 'UTC')"
        month = f"(CAST(EXTRACT(YEAR FROM {utc}) * 12 + EXTRACT(MONTH FROM {utc}) - 1 AS BIGINT))"
    else:
        month = (
            f"(CAST(strftime('%Y', {ts}, 'unixepoch') AS INTEGER) * 12"
            f" + CAST(strftime('%m', {ts}, 'unixepoch') AS INTEGER) - 1)"
        )
    dims = ", ".join(table.dims)
    sums = ", ".join(f"SUM({f})" for f in table.figures)
    return (
        f"INSERT INTO {table.name} ({', '.join(table.columns)})"
        f" SELECT account, {DAY_QUARTERS}, {month} * 96 + bucket % 96, {dims}, {sums}"
        f" FROM {table.name} WHERE grain = 900"
        f" GROUP BY account, {month} * 96 + bucket % 96, {dims};"
    )


MIGRATIONS.append(
    PerEngine(
        "\n".join(fill_day_quarters(t) for t in TABLES),
        "\n".join(fill_day_quarters(t, postgresql=True) for t in TABLES),
    )
)


def ensure_schema(conn: Connection) -> None:
    migrate(conn, "statistics", MIGRATIONS)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def wait_bin(seconds: float) -> str:
    for i, edge in enumerate(WAIT_EDGES):
        if seconds < edge:
            return HIST[i]
    return HIST[-1]


Delta = tuple[Table, tuple[Any, ...], dict[str, int]]


def deltas(facts: CallFacts) -> list[Delta]:
    """What one call adds, per table: (table, key after account/grain/bucket, figures)."""
    answered = facts.outcome == "answered"
    call = {
        "offered": 1,
        facts.outcome: 1,
        "rerouted": int(facts.rerouted),
        "answer_ms": _ms(facts.speed_of_answer or 0.0) if answered else 0,
        "talk_ms": _ms(facts.talk),
        "webhook_failures": facts.webhook_failures,
    }
    out: list[Delta] = [
        (CALLS, (facts.direction, facts.number, facts.flow), call),
        (FLOWS, (facts.direction, facts.flow), call),
    ]
    for q in facts.queues:
        figures = {
            "entered": 1,
            q.result: 1,
            "in_sl": int(q.result == "answered" and q.wait <= q.service_level),
            "wait_ms": _ms(q.wait),
            "answered_wait_ms": _ms(q.wait) if q.result == "answered" else 0,
            "talk_ms": _ms(q.talk),
            wait_bin(q.wait): 1,
        }
        out.append((QUEUES, (facts.flow, q.queue), figures))
    for s in facts.steps:
        figures = {"entered": 1, "abandoned": int(s.abandoned), "ended": int(s.ended)}
        out.append((STEPS, (facts.flow, s.step, s.verb), figures))
    for step, option in facts.menu:
        out.append((MENU, (facts.flow, step, option), {"chosen": 1}))
    return out


def bucket_of(moment: datetime, grain: int) -> int:
    if grain == DAY_QUARTERS:
        moment = moment.astimezone(UTC)
        return month_index(moment) * 96 + moment.hour * 4 + moment.minute // 15
    return int(moment.timestamp()) // grain


def month_index(moment: datetime) -> int:
    """Months since year 0 (UTC): 2026-03 is 2026 * 12 + 2."""
    return moment.year * 12 + moment.month - 1


ALL_GRAINS = (*GRAINS, DAY_QUARTERS)


def _upsert_sql(table: Table) -> str:
    cols = table.columns
    marks = ", ".join("?" for _ in cols)
    # The old value named by its table: unqualified, PostgreSQL finds it ambiguous.
    sets = ", ".join(f"{c} = {table.name}.{c} + excluded.{c}" for c in table.figures)
    return (
        f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({marks})"
        f" ON CONFLICT ({', '.join(table.key)}) DO UPDATE SET {sets}"
    )


_SQL = {t.name: _upsert_sql(t) for t in TABLES}

Rows = dict[tuple[str, tuple[Any, ...]], dict[str, int]]


def add_to(rows: Rows, facts: CallFacts) -> None:
    """Add one call to in-memory rollup rows (what the tables would get)."""
    changes = deltas(facts)
    for grain in ALL_GRAINS:
        bucket = bucket_of(facts.started, grain)
        for table, key, figures in changes:
            full = (facts.account, grain, bucket, *key)
            row = rows.setdefault((table.name, full), {})
            for name, value in figures.items():
                if value:
                    row[name] = row.get(name, 0) + value


def write_rows(conn: Connection, rows: Rows) -> None:
    """Add in-memory rows to the tables (one statement per row, grouped per table)."""
    by_table: dict[str, list[tuple[Any, ...]]] = {}
    tables = {t.name: t for t in TABLES}
    for (name, key), figures in rows.items():
        table = tables[name]
        by_table.setdefault(name, []).append((*key, *(figures.get(f, 0) for f in table.figures)))
    for name, values in by_table.items():
        conn.executemany(_SQL[name], values)


def read_rows(conn: Connection, account: str | None = None) -> Rows:
    """The tables as in-memory rows (zero figures dropped), to compare with a recomputation."""
    rows: Rows = {}
    for table in TABLES:
        sql = f"SELECT {', '.join(table.columns)} FROM {table.name}"
        args: tuple[str, ...] = ()
        if account is not None:
            sql += " WHERE account = ?"
            args = (account,)
        n = len(table.key)
        for r in conn.execute(sql, args):
            figures = {f: v for f, v in zip(table.figures, tuple(r)[n:], strict=True) if v}
            rows[(table.name, tuple(r)[:n])] = figures
    return rows


class CallSource(Protocol):
    """The call registry as the statistics read it (flexvoice.calls.CallRegistry)."""

    def get(self, call_id: str, account: str | None = None) -> Any: ...

    def events(self, call_id: str) -> list[dict[str, Any]]: ...


def recompute(conn: Connection, source: CallSource) -> Rows:
    """The rollups computed again from every ended call in the registry (slow: for checks
    and `flexvoice statistics verify`)."""
    return recount(conn, source)[0]


def recount(conn: Connection, source: CallSource) -> tuple[Rows, list[tuple[str, str]]]:
    """The rollups computed again, and the calls they count with their end (id, ended_at)."""
    rows: Rows = {}
    counted: list[tuple[str, str]] = []
    for call_id, ended_at in conn.execute(
        "SELECT id, ended_at FROM calls WHERE ended_at IS NOT NULL"
    ).fetchall():
        call = source.get(call_id)
        if call is None or not is_own_call(call):
            continue
        add_to(rows, call_facts(call, source.events(call_id)))
        counted.append((call_id, ended_at))
    return rows, counted


def differences(stored: Rows, computed: Rows, limit: int = 10) -> list[str]:
    """Rows that differ, said in words (empty when the rollups are right)."""
    out: list[str] = []
    for key in sorted(set(stored) | set(computed), key=repr):
        a, b = stored.get(key, {}), computed.get(key, {})
        if a != b:
            out.append(f"{key[0]} {key[1]}: stored {a}, recomputed {b}")
            if len(out) >= limit:
                break
    return out

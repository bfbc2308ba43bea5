"""A statistics question as asked over the API (period, time zone, grouping, filters), checked
and said back in words when it cannot be answered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flexvoice.statistics.period import QueryError, aligned, offset_pieces, parse_moment, zone

TIME_DIMS = ("quarter", "hour", "dow", "date", "month")
GROUPS = ("number", "flow", "direction", "queue", "step", "outcome", *TIME_DIMS)
MAX_DAYS = 3 * 366


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
    aligned(a, start, "from")
    aligned(b, end, "to")
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

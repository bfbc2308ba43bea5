"""`hours`: weekly opening hours, closing days and a time zone decide between two branches.

`evaluate(now)` is pure (no clock read): tests and `flows simulate --at` pass the moment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, Field, field_validator

from flexvoice.flows.base import Finding, Next, StepRef, Verb

if TYPE_CHECKING:
    from flexvoice.flows.context import CallContext

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE_RE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _as_text(value: Any) -> Any:
    # YAML reads an unquoted 2026-12-25 as a date; keep the text the user wrote.
    return value.isoformat() if isinstance(value, date) else value


DayText = Annotated[str, BeforeValidator(_as_text)]


def parse_days(spec: str) -> list[int]:
    """'mon-fri', 'sat', 'mon,wed,fri', 'fri-mon' -> weekday numbers (Monday = 0)."""
    out: list[int] = []
    for part in spec.lower().replace(" ", "").split(","):
        ends = part.split("-")
        if len(ends) > 2 or any(e not in DAYS for e in ends):
            raise ValueError(
                f"'{spec}' is not a day or day range; write e.g. mon-fri, sat, mon,wed"
            )
        a, b = DAYS.index(ends[0]), DAYS.index(ends[-1])
        out += [(a + i) % 7 for i in range((b - a) % 7 + 1)]
    return out


def parse_ranges(value: str | list[str]) -> list[tuple[time, time]]:
    """'08:30-18:00' or a list of them -> [(start, end)]; '00:00-24:00' is the whole day."""
    items = [value] if isinstance(value, str) else value
    out = []
    for item in items:
        m = _RANGE_RE.match(str(item).replace(" ", ""))
        if not m:
            raise ValueError(f"'{item}' is not a time range; write e.g. \"08:30-18:00\"")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
            raise ValueError(f"'{item}' has an hour or minute out of range")
        start = time(h1, m1)
        end = time.max if h2 == 24 else time(h2, m2)
        if end <= start:
            raise ValueError(f"'{item}' ends before it starts; split a night into two days")
        out.append((start, end))
    return out


def parse_closed(spec: str) -> tuple[date, date]:
    """'2026-12-25' or '2026-12-24..2026-12-26' -> (first, last)."""
    ends = spec.split("..")
    if len(ends) > 2 or not all(_DATE_RE.match(e.strip()) for e in ends):
        raise ValueError(f"'{spec}' is not a date; write 2026-12-25 or 2026-12-24..2026-12-26")
    try:
        first, last = (date.fromisoformat(e.strip()) for e in (ends[0], ends[-1]))
    except ValueError:
        raise ValueError(f"'{spec}' is not a real date") from None
    if last < first:
        raise ValueError(f"'{spec}': the range ends before it starts")
    return first, last


@dataclass(frozen=True)
class Schedule:
    zone: ZoneInfo
    week: dict[int, list[tuple[time, time]]]  # weekday -> ranges
    labels: dict[int, str]  # weekday -> the spec that gave it, for the why
    closed: list[tuple[date, date, str]]

    def evaluate(self, now: datetime) -> tuple[bool, str]:
        local = now.astimezone(self.zone)
        day, at = local.date(), local.time()
        stamp = f"{DAYS[local.weekday()].capitalize()} {day.isoformat()} {at:%H:%M} {self.zone}"
        for first, last, spec in self.closed:
            if first <= day <= last:
                return False, f"closed: {stamp} is a closing day ({spec})"
        ranges = self.week.get(local.weekday(), [])
        for start, end in ranges:
            if start <= at < end or (end == time.max and at >= start):
                shown = f"{start:%H:%M}-{'24:00' if end == time.max else f'{end:%H:%M}'}"
                return True, f"open: {stamp} is within {self.labels[local.weekday()]} {shown}"
        if not ranges:
            return False, f"closed: {stamp}, no opening hours on {DAYS[local.weekday()]}"
        return False, f"closed: {stamp} is outside {self.labels[local.weekday()]} opening hours"


class Hours(Verb):
    verb = "hours"

    timezone: str = Field("Europe/Brussels", description="IANA time zone, e.g. Europe/Brussels")
    open: dict[str, str | list[str]] = Field(
        description='days to time ranges: {mon-fri: "08:30-18:00", sat: ["09:00-12:00"]}'
    )
    closed_days: list[DayText] = Field(
        default_factory=list, description="dates (2026-12-25) or ranges (2026-12-24..2026-12-26)"
    )
    when_open: StepRef
    when_closed: StepRef

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"is not a time zone (got {value!r}); write an IANA name such as Europe/Brussels"
            ) from None
        return value

    def check(self) -> list[Finding]:
        found: list[Finding] = []
        seen: dict[int, str] = {}
        for spec, ranges in self.open.items():
            try:
                for d in parse_days(spec):
                    if d in seen:
                        found.append(
                            Finding(
                                ("open", spec),
                                f"{DAYS[d]} is already given by '{seen[d]}'; "
                                "list all of a day's ranges under one key",
                                key=True,
                            )
                        )
                    seen[d] = spec
            except ValueError as exc:
                found.append(Finding(("open", spec), str(exc), key=True))
            try:
                parse_ranges(ranges)
            except ValueError as exc:
                found.append(Finding(("open", spec), str(exc)))
        for i, spec in enumerate(self.closed_days):
            try:
                parse_closed(spec)
            except ValueError as exc:
                found.append(Finding(("closed_days", i), str(exc)))
        return found

    @cached_property
    def schedule(self) -> Schedule:
        week: dict[int, list[tuple[time, time]]] = {}
        labels: dict[int, str] = {}
        for spec, ranges in self.open.items():
            for d in parse_days(spec):
                week[d] = parse_ranges(ranges)
                labels[d] = spec
        closed = [(*parse_closed(s), s) for s in self.closed_days]
        return Schedule(ZoneInfo(self.timezone), week, labels, closed)

    def evaluate(self, now: datetime) -> tuple[bool, str]:
        return self.schedule.evaluate(now)

    def describe(self) -> str:
        week = ", ".join(
            f"{k} {v if isinstance(v, str) else ' '.join(v)}" for k, v in self.open.items()
        )
        return f"hours {week}"

    async def run(self, ctx: CallContext) -> Next:
        is_open, why = self.evaluate(ctx.now())
        return Next(self.when_open if is_open else self.when_closed, why)

"""The period of a statistics question: its time zone, its start and end in UTC, the pieces
where the zone's UTC offset stays the same (daylight saving time), and the rollup buckets that
cover each piece at the coarsest grain still exact for the question."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flexvoice.statistics.rollup import DAY_QUARTERS, GRAINS, month_index

STEP = 900


class QueryError(ValueError):
    """A question the statistics cannot answer, said so the asker can fix it."""


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


def aligned(moment: datetime, text: str, what: str) -> None:
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


class Piece(NamedTuple):
    """Rollup rows to read: one grain's buckets from `lo` to before `hi`, but not the hour
    buckets whose UTC hour of day is `skip_hour`, or only the buckets in `only`."""

    grain: int
    lo: int
    hi: int
    skip_hour: int | None = None
    only: tuple[int, ...] = ()


def cover(a: int, b: int, grains: tuple[int, ...]) -> list[Piece]:
    """[a, b) as pieces, the coarsest grain first."""
    if a >= b or not grains:
        return []
    g, rest = grains[0], grains[1:]
    lo, hi = -(-a // g) * g, b // g * g
    if lo >= hi:
        return cover(a, b, rest)
    return [*cover(a, lo, rest), Piece(g, lo // g, hi // g), *cover(hi, b, rest)]


def around_midnight(a: int, b: int, offset: int) -> list[Piece]:
    """[a, b) for questions by local day (date, weekday, month) in a zone whose offset is not
    whole hours (India +5:30, Nepal +5:45, Newfoundland -3:30): a local day starts inside a
    UTC hour, so no UTC day is one local day, but every UTC hour but that one lies within one
    local day. Those 23 hours a day are read from the hour grain, the hour holding midnight
    from its four 15-minute buckets - about a quarter of the rows of 15 minutes throughout."""
    first, end = -(-a // 3600), b // 3600
    if first >= end:
        return cover(a, b, (STEP,))
    midnight = (-offset) % 86400 // 3600  # the UTC hour of day holding local midnight
    quarters = tuple(h * 4 + k for h in range(first, end) if h % 24 == midnight for k in range(4))
    inner = [Piece(3600, first, end, skip_hour=midnight)]
    if quarters:
        inner.append(Piece(STEP, first * 4, end * 4, only=quarters))
    return [*cover(a, first * 3600, (STEP,)), *inner, *cover(end * 3600, b, (STEP,))]


def grains_for(group_by: tuple[str, ...], offset: int) -> tuple[int, ...]:
    finest = 86400 * 31
    if "quarter" in group_by:
        finest = 900
    elif "hour" in group_by:
        finest = 3600
    elif any(d in group_by for d in ("dow", "date", "month")):
        finest = 86400
    usable = [g for g in GRAINS if g <= finest and (finest > 86400 or offset % g == 0)]
    return tuple(sorted(usable, reverse=True))


def plan(
    a: int, b: int, group_by: tuple[str, ...], offset: int, forced: tuple[int, ...] | None = None
) -> list[Piece]:
    """The pieces to read for [a, b), a span of one UTC offset: the whole UTC months inside it
    from the day-quarter grain when the question asks for the time of day only (hour or
    quarter, no date, weekday or month); by local day in a zone of half or quarter hours,
    `around_midnight`; the rest by `cover`. `forced` reads only those grains (the benchmark's
    comparison)."""
    if forced is not None:
        return cover(a, b, forced)
    grains = grains_for(group_by, offset)
    dims = set(group_by)
    by_day = dims & {"date", "dow", "month"} and not dims & {"hour", "quarter"}
    if by_day and offset % 3600:
        return around_midnight(a, b, offset)
    if not dims & {"hour", "quarter"} or dims & {"date", "dow", "month"}:
        return cover(a, b, grains)
    first = datetime.fromtimestamp(a, UTC)
    m0 = month_index(first) + (first != _month_start(month_index(first)))
    m1 = month_index(datetime.fromtimestamp(b, UTC))
    if m0 >= m1:
        return cover(a, b, grains)
    start, end = _ts(m0), _ts(m1)
    quarters = Piece(DAY_QUARTERS, m0 * 96, m1 * 96)
    return [*cover(a, start, grains), quarters, *cover(end, b, grains)]


def _month_start(index: int) -> datetime:
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def _ts(index: int) -> int:
    return int(_month_start(index).timestamp())

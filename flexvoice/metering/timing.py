"""Times and months: events carry ISO 8601 times with an offset; months are calendar months
in Europe/Brussels (an event at 23:30 UTC on 31 March is in April in Brussels)."""

from __future__ import annotations

import re
from datetime import datetime, time
from zoneinfo import ZoneInfo

BRUSSELS = ZoneInfo("Europe/Brussels")
MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
FIRST_MONTH = "1970-01"
LAST_MONTH = "9998-12"


def month_of(moment: datetime) -> str:
    if 2 <= moment.day <= 27:
        # No UTC offset (at most ±1 day) can move such a date into another month.
        return f"{moment.year:04d}-{moment.month:02d}"
    local = moment.astimezone(BRUSSELS)
    return f"{local.year:04d}-{local.month:02d}"


def check_month(text: str) -> str:
    """A month argument 'YYYY-MM', or ValueError with the expected form."""
    if not MONTH_RE.match(text):
        raise ValueError(f"month '{text}' must be written YYYY-MM, e.g. 2024-03")
    if not FIRST_MONTH <= text <= LAST_MONTH:
        # Month arithmetic needs the next month to exist too (9999-12 has none).
        raise ValueError(f"month '{text}' must be between {FIRST_MONTH} and {LAST_MONTH}")
    return text


def month_start(month: str) -> datetime:
    year, mon = int(month[:4]), int(month[5:7])
    return datetime(year, mon, 1, tzinfo=BRUSSELS)


def next_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"


def month_end(month: str) -> datetime:
    """The first instant of the following month (exclusive end)."""
    return month_start(next_month(month))


def last_month_touched(end: datetime) -> str:
    """The last month in which a period ending (exclusively) at `end` had any moment."""
    local = end.astimezone(BRUSSELS)
    if local.day == 1 and local.time() == time(0):
        # Ending exactly at midnight on the 1st: nothing of that month was used.
        year, mon = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
        return f"{year:04d}-{mon:02d}"
    return f"{local.year:04d}-{local.month:02d}"

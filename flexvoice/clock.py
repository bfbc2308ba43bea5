"""The wall clock every service is given by default, and the week's day names.

Services take a clock (`Callable[[], datetime]`) so tests and the flow simulator can
set the time; this is the one real clock they default to.
"""

from __future__ import annotations

from datetime import UTC, datetime

# Monday first, as `datetime.weekday()` counts; the names flows and statistics use.
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def utc_now() -> datetime:
    return datetime.now(UTC)

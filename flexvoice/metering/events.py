"""Usage events: one JSON object per line, as the engine writes them and finance imports them.

`parse_event` checks one object and returns an `Event` with what rating needs, or raises
`EventError` naming the field and the fix. Hand-written rather than a pydantic model: this runs
for every event at import speed (tens of thousands a second) and its messages name fields
the way the event format does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from flexvoice.e164 import E164_RE
from flexvoice.metering.destinations import BadNumber, classify
from flexvoice.metering.sms import segments
from flexvoice.metering.timing import BRUSSELS, month_of

KINDS = ("call", "recording", "conference", "sms", "verification", "reroute", "number", "designer")
MAX_ID = 200
TIME_EXAMPLE = "2024-03-01T10:00:00+01:00"


class EventError(ValueError):
    def __init__(self, field: str | None, message: str):
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


@dataclass(slots=True)
class Event:
    id: str
    account: str
    kind: str
    applies_to: str  # the tariff's word for it: outbound_call, inbound_call, sms, ...
    at: datetime  # when it is billed: picks the month and the tariff version
    month: str  # calendar month of `at` in Europe/Brussels
    until: datetime | None = None  # end of a number/designer period; None while active
    destination: str | None = None  # destination class for outbound calls, SMS, 2FA
    duration_us: int = 0  # billed duration of calls and recordings
    count: int = 1  # SMS segments; 1 for a set-up, request or reroute
    number: str | None = None  # the number of a `number` event


def _text(obj: Mapping[str, Any], key: str, max_len: int = 200) -> str:
    value = obj.get(key)
    if type(value) is str and 0 < len(value) <= max_len:  # the usual case, checked first
        return value
    if key not in obj:
        raise EventError(key, "required field is missing")
    if not isinstance(value, str) or not value:
        raise EventError(key, f"must be non-empty text (got {value!r})")
    if len(value) > max_len:
        raise EventError(key, f"is longer than {max_len} characters")
    return value


def _day(value: str, key: str, end: bool) -> datetime:
    """A plain date 'YYYY-MM-DD' of a period: that calendar day in Europe/Brussels, from its
    first moment (`end` False) or through its last (`end` True: the period's exclusive end is
    the next midnight, so the day itself counts)."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise EventError(key, f"'{value}' is not a date; write it like 2024-03-01") from None
    if end:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=BRUSSELS)


def _time(
    obj: Mapping[str, Any], key: str, nullable: bool = False, dates: str | None = None
) -> datetime | None:
    """An ISO 8601 time with an offset. `dates` "start" or "end": a plain date is also taken
    (the start or the end of that day in Europe/Brussels), as people write periods."""
    value = obj.get(key)
    if type(value) is str:
        if dates is not None and len(value) == 10:
            return _day(value, key, dates == "end")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise EventError(
                key, f"'{value}' is not an ISO 8601 time; write it like {TIME_EXAMPLE}"
            ) from None
        if moment.tzinfo is None:
            raise EventError(key, f"'{value}' has no offset; add one, e.g. {TIME_EXAMPLE}")
        return moment
    if key not in obj:
        raise EventError(key, "required field is missing" + (" (null if none)" if nullable else ""))
    if value is None and nullable:
        return None
    raise EventError(key, f"must be an ISO 8601 time like {TIME_EXAMPLE} (got {value!r})")


def _required_time(obj: Mapping[str, Any], key: str) -> datetime:
    moment = _time(obj, key)
    assert moment is not None
    return moment


def _e164(obj: Mapping[str, Any], key: str) -> str:
    value = _text(obj, key, 20)
    if not E164_RE.match(value):
        raise EventError(key, f"'{value}' is not an E.164 number (write it like +32470123456)")
    return value


def _destination(obj: Mapping[str, Any], key: str) -> tuple[str, str]:
    value = _text(obj, key, 20)
    try:
        return value, classify(value)
    except BadNumber as exc:
        raise EventError(key, str(exc)) from None


def _not_before(start: datetime, start_key: str, end: datetime, end_key: str) -> None:
    if end < start:
        raise EventError(end_key, f"is before {start_key}")


def _duration_us(start: datetime, end: datetime) -> int:
    delta = end - start
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _call(obj: Mapping[str, Any], ev: Event) -> None:
    if "direction" not in obj:
        raise EventError("direction", "required field is missing ('inbound' or 'outbound')")
    direction = obj.get("direction")
    if direction not in ("inbound", "outbound"):
        raise EventError("direction", f"must be 'inbound' or 'outbound' (got {direction!r})")
    _text(obj, "from", 256)  # anonymous callers, SIP URIs: any text, not priced
    started = _required_time(obj, "started_at")
    answered = _time(obj, "answered_at", nullable=True)
    ended = _required_time(obj, "ended_at")
    if answered is None:
        if ended < started:
            _not_before(started, "started_at", ended, "ended_at")
    else:
        if not started <= answered <= ended:
            _not_before(started, "started_at", ended, "ended_at")
            _not_before(started, "started_at", answered, "answered_at")
            _not_before(answered, "answered_at", ended, "ended_at")
        ev.duration_us = _duration_us(answered, ended)
    ev.at, ev.month = started, month_of(started)
    if direction == "outbound":
        ev.applies_to = "outbound_call"
        _, ev.destination = _destination(obj, "to")
    else:
        ev.applies_to = "inbound_call"
        _e164(obj, "to")


def _recording(obj: Mapping[str, Any], ev: Event) -> None:
    _text(obj, "call_id")
    started = _required_time(obj, "started_at")
    ended = _required_time(obj, "ended_at")
    _not_before(started, "started_at", ended, "ended_at")
    ev.at, ev.month, ev.duration_us = started, month_of(started), _duration_us(started, ended)


def _conference(obj: Mapping[str, Any], ev: Event) -> None:
    _text(obj, "room")
    ev.at = _required_time(obj, "started_at")
    ev.month = month_of(ev.at)


def _sms(obj: Mapping[str, Any], ev: Event) -> None:
    _text(obj, "from", 256)  # an alphanumeric sender is allowed
    _, ev.destination = _destination(obj, "to")
    ev.at = _required_time(obj, "sent_at")
    ev.month = month_of(ev.at)
    body, count = obj.get("body"), obj.get("segments")
    if body is None and count is None:
        raise EventError("body", "give the message 'body' or its number of 'segments'")
    if body is not None:
        if not isinstance(body, str):
            raise EventError("body", f"must be text (got {type(body).__name__})")
        ev.count = segments(body)
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise EventError("segments", f"must be a whole number of at least 1 (got {count!r})")
        if body is not None and count != ev.count:
            raise EventError("segments", f"says {count} but the body makes {ev.count}")
        ev.count = count


def _verification(obj: Mapping[str, Any], ev: Event) -> None:
    _, ev.destination = _destination(obj, "to")
    channel = obj.get("channel")
    if channel not in ("sms", "voice"):
        raise EventError("channel", f"must be 'sms' or 'voice' (got {channel!r})")
    ev.at = _required_time(obj, "requested_at")
    ev.month = month_of(ev.at)


def _reroute(obj: Mapping[str, Any], ev: Event) -> None:
    _e164(obj, "number")
    ev.at = _required_time(obj, "at")
    ev.month = month_of(ev.at)


def _period(obj: Mapping[str, Any], ev: Event) -> None:
    at = _time(obj, "active_from", dates="start")
    assert at is not None
    ev.at = at
    ev.month = month_of(ev.at)
    ev.until = _time(obj, "active_to", nullable=True, dates="end")
    if ev.until is not None and ev.until <= ev.at:
        raise EventError("active_to", "must be after active_from")


def _number(obj: Mapping[str, Any], ev: Event) -> None:
    ev.number = _e164(obj, "number")
    _period(obj, ev)


_PARSERS: dict[str, Callable[[Mapping[str, Any], Event], None]] = {
    "call": _call,
    "recording": _recording,
    "conference": _conference,
    "sms": _sms,
    "verification": _verification,
    "reroute": _reroute,
    "number": _number,
    "designer": _period,
}


def parse_event(obj: Any) -> Event:
    if not isinstance(obj, dict):
        raise EventError(None, f"an event must be a JSON object (got {type(obj).__name__})")
    event_id = _text(obj, "id", MAX_ID)
    account = _text(obj, "account", 63)
    kind = obj.get("kind")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise EventError("kind", f"must be one of {', '.join(KINDS)} (got {kind!r})")
    assert isinstance(kind, str)
    ev = Event(event_id, account, kind, kind, _EPOCH, "")
    parser(obj, ev)
    return ev


_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")

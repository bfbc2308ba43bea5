"""What the usage store takes in and gives out: import and rerate reports, statement and
detail lines, and the event comparisons an import makes when an id is already stored."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

from flexvoice.metering.money import fmt_price
from flexvoice.metering.rating import Charge, Unrated

PERIOD_KINDS = ("number", "designer")
BATCH_SIZE = 5000


@dataclass(frozen=True)
class Rejection:
    line: int  # 1-based line of the file (or position in the iterable)
    event_id: str | None
    reason: str

    def __str__(self) -> str:
        what = f"event '{self.event_id}': " if self.event_id else ""
        return f"line {self.line}: {what}{self.reason}"


@dataclass
class ImportReport:
    imported: int = 0
    duplicates: int = 0
    closed: int = 0  # of `imported`: open number/designer periods given their end (same id)
    rejected: list[Rejection] = field(default_factory=list)
    unrated: list[Rejection] = field(default_factory=list)  # imported, but not priced yet

    def merge(self, other: ImportReport) -> None:
        self.imported += other.imported
        self.duplicates += other.duplicates
        self.closed += other.closed
        self.rejected += other.rejected
        self.unrated += other.unrated


@dataclass(frozen=True)
class StatementLine:
    """One row of a monthly statement; `row` says what it is."""

    account: str
    month: str
    service: str
    quantity: Decimal | None
    unit: str
    unit_price: Decimal | None  # None when the month mixes tariff versions with other prices
    amount: Decimal | None  # rounded to cents; None for 'unrated' rows
    row: str  # service | minimum | subtotal | vat | total | unrated

    def as_dict(self) -> dict[str, str | None]:
        """For JSON (the API): decimals as strings, never floats."""
        return {
            "account": self.account,
            "month": self.month,
            "service": self.service,
            "row": self.row,
            "quantity": None if self.quantity is None else str(self.quantity),
            "unit": self.unit,
            "unit_price_eur": None if self.unit_price is None else str(self.unit_price),
            "amount_eur": None if self.amount is None else str(self.amount),
        }


class DetailLine(NamedTuple):
    """One event's charge in a month (an open number period gives one per month)."""

    account: str
    month: str
    event_id: str
    service: str
    quantity: Decimal | None
    unit: str
    unit_price: Decimal | None
    amount: Decimal | None  # unrounded
    tariff_version: str
    note: str  # unrated reason, or why a period is not charged twice


@dataclass
class RerateReport:
    events: int = 0
    changed: int = 0
    unrated: int = 0


# One event's row for a detail export, straight from SQL: (account, event_id, service, units,
# divisor, unit, unit_price text, tariff_version, note); units is None when unrated.
RawDetail = tuple[str, str, str, int | None, int | None, str, str | None, str, str]


class Parsed:
    """An input item with its line number: an object (and its JSON text), or why not."""

    __slots__ = ("error", "line", "obj", "raw")

    def __init__(
        self, line: int, obj: Any = None, error: str | None = None, raw: str | None = None
    ):
        self.line, self.obj, self.error, self.raw = line, obj, error, raw


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def same_event(stored: str, new: str) -> bool:
    """Same content whatever the key order or spacing (only checked when ids collide)."""
    if stored == new:
        return True
    return canonical(json.loads(stored)) == canonical(json.loads(new))


def closes_period(stored: str, new: str) -> bool:
    """True when `new` is the stored open period (number, designer) with its end now set:
    the one change an id may take, since the engine writes a period when it opens and the
    same event with `active_to` when it closes. Anything else about it stays as stored."""
    before, after = json.loads(stored), json.loads(new)
    if not (isinstance(before, dict) and isinstance(after, dict)):
        return False
    if before.get("kind") not in PERIOD_KINDS or before.get("active_to") is not None:
        return False
    if after.get("active_to") is None:
        return False
    rest = {k: v for k, v in after.items() if k != "active_to"}
    return canonical({k: v for k, v in before.items() if k != "active_to"}) == canonical(rest)


def charge_columns(result: Charge | Unrated | None) -> tuple[Any, ...]:
    if isinstance(result, Charge):
        return (
            result.service,
            result.units,
            result.divisor,
            result.unit,
            fmt_price(result.unit_price),
            result.version,
            None,
        )
    reason = result.reason if isinstance(result, Unrated) else None
    return (None, None, None, None, None, None, reason)


def detail_line(month: str, raw: RawDetail) -> DetailLine:
    account, event_id, service, units, divisor, unit, price, version, note = raw
    if units is None or divisor is None or price is None:
        return DetailLine(account, month, event_id, service, None, unit, None, None, version, note)
    unit_price = Decimal(price)
    return DetailLine(
        account,
        month,
        event_id,
        service,
        Decimal(units) / divisor,
        unit,
        unit_price,
        unit_price * units / divisor,
        version,
        note,
    )

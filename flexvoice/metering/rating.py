"""Rating: one event under one tariff gives a charge (quantity × unit price, unrounded) or the
reason it cannot be priced (an unrated event is kept, listed, and priced by a later rerate).

Point events (calls, SMS, ...) are charged once, in the month of their time. Number and
designer events are periods charged in full for every calendar month they touch; the price of
each month is the version in force at the start of that month (or at activation, if later).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from flexvoice.metering.events import Event
from flexvoice.metering.tariffs import DURATION_KINDS, Tariff, TariffVersion
from flexvoice.metering.timing import month_start


@dataclass(slots=True)  # not frozen: a frozen __init__ costs a microsecond per event
class Charge:
    """`units` are whole billable seconds of a duration (divisor 60: priced per minute) or a
    whole count (divisor 1), so quantities add up exactly as integers, even in SQL."""

    service: str
    units: int
    divisor: int
    unit: str
    unit_price: Decimal
    version: str

    @property
    def quantity(self) -> Decimal:
        return Decimal(self.units) / self.divisor

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.units / self.divisor


@dataclass(frozen=True, slots=True)
class Unrated:
    reason: str


def _version(tariff: Tariff, moment: datetime) -> TariffVersion | Unrated:
    version = tariff.version_at(moment)
    if version is None:
        first = tariff.versions[0].model.valid_from.isoformat()
        return Unrated(f"tariff {tariff.name} starts on {first}, after this event")
    return version


def rate(event: Event, tariff: Tariff, moment: datetime | None = None) -> Charge | Unrated:
    """Price `event`; `moment` picks the version (defaults to the event's own time)."""
    version = _version(tariff, moment or event.at)
    if isinstance(version, Unrated):
        return version
    priced = version.find(event.applies_to, event.destination)
    if priced is None:
        what = event.applies_to.replace("_", " ")
        if event.destination is not None:
            return Unrated(f"{what} to {event.destination} is not priced by {version.label}")
        return Unrated(f"{what} is not priced by {version.label}")
    svc = priced.service
    if event.applies_to in DURATION_KINDS:
        seconds = svc.increments_or_default.billable_seconds(event.duration_us)
        return Charge(priced.name, seconds, 60, svc.unit, svc.price, priced.version)
    return Charge(priced.name, event.count, 1, svc.unit, svc.price, priced.version)


def rate_period_month(event: Event, tariff: Tariff, month: str) -> Charge | Unrated:
    """One month of a number or designer period (the caller checks the period touches it)."""
    return rate(event, tariff, max(month_start(month), event.at))

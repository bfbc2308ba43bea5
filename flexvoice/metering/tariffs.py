"""Tariffs: the YAML price lists in `metering/tariffs/`, one file per tariff, with versions.

A tariff has versions, each with a `valid_from` date (midnight Europe/Brussels); an event is
priced by the version in force at its time, so a new version never changes older events.
Each service names what it `applies_to` (an event kind), its unit, its price (text, up to 6
decimals), billing increments for durations and an optional minimum monthly amount.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import phonenumbers
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from flexvoice.errors import Problem, ProblemList, UserError
from flexvoice.metering.money import parse_price
from flexvoice.metering.timing import BRUSSELS
from flexvoice.yamlsrc import load_yaml
from flexvoice.yamlwords import did_you_mean, explain_validation_error

AppliesTo = Literal[
    "outbound_call",
    "inbound_call",
    "recording",
    "conference",
    "sms",
    "verification",
    "reroute",
    "number",
    "designer",
]
DURATION_KINDS = frozenset({"outbound_call", "inbound_call", "recording"})
DESTINATION_KINDS = frozenset({"outbound_call", "sms", "verification"})
NUMBER_TYPES = (
    "mobile",
    "fixed",
    "fixed_or_mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)
DESTINATION_RE = re.compile(r"^[A-Z]{2} (" + "|".join(NUMBER_TYPES) + r")$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def _price_text(value: Any) -> Decimal:
    # Prices are text so that YAML never turns 0.095 into a binary float on the way in.
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"write the amount as text in quotes, e.g. '0.095' (got {value!r})")
    return parse_price(value)


Price = Annotated[Decimal, BeforeValidator(_price_text)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Increments(_Model):
    first: Annotated[int, Field(ge=1, le=3600)] = 60
    next: Annotated[int, Field(ge=1, le=3600)] = 60

    def billable_seconds(self, duration_us: int) -> int:
        """Seconds charged for a duration: nothing for 0 s, then `first`, then each `next`."""
        if duration_us <= 0:
            return 0
        first_us = self.first * 1_000_000
        if duration_us <= first_us:
            return self.first
        step_us = self.next * 1_000_000
        steps = -(-(duration_us - first_us) // step_us)  # ceiling division on integers
        return self.first + steps * self.next


class Service(_Model):
    applies_to: AppliesTo
    unit: Annotated[str, Field(min_length=1, max_length=40)]
    price: Price
    increments: Increments | None = None
    destinations: list[str] | None = None
    minimum_monthly: Price | None = None
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> Service:
        if self.increments is not None and self.applies_to not in DURATION_KINDS:
            raise ValueError(
                f"increments only apply to durations ({', '.join(sorted(DURATION_KINDS))})"
            )
        if self.applies_to in DURATION_KINDS and self.unit != "minute":
            raise ValueError("durations are priced per 'minute'; set unit: minute")
        if self.destinations is not None:
            if self.applies_to not in DESTINATION_KINDS:
                raise ValueError(
                    f"destinations only apply to {', '.join(sorted(DESTINATION_KINDS))}"
                )
            for dest in self.destinations:
                if not DESTINATION_RE.match(dest):
                    raise ValueError(
                        f"destination '{dest}' must be a country code and a number type, "
                        f"e.g. 'BE mobile' (types: {', '.join(NUMBER_TYPES)})"
                    )
                if dest[:2] not in phonenumbers.SUPPORTED_REGIONS:
                    raise ValueError(
                        f"destination '{dest}': '{dest[:2]}' is not a country code; use the "
                        "two-letter ISO code, e.g. BE, FR, NL"
                    )
        return self

    @property
    def increments_or_default(self) -> Increments:
        return self.increments or Increments()


class Version(_Model):
    valid_from: date
    services: Annotated[dict[str, Service], Field(min_length=1)]

    @model_validator(mode="after")
    def _unambiguous(self) -> Version:
        # Two services must never both claim an event, or the price would depend on order.
        seen: dict[tuple[str, str | None], str] = {}
        for name, svc in self.services.items():
            if not NAME_RE.match(name):
                raise ValueError(f"service name '{name}': use lower-case letters, digits, '_'")
            for dest in _dests(svc):
                key = (svc.applies_to, dest)
                if key in seen:
                    what = f"{svc.applies_to} to {dest}" if dest else svc.applies_to
                    raise ValueError(f"services '{seen[key]}' and '{name}' both price {what}")
                seen[key] = name
        return self


class TariffFile(_Model):
    name: str
    description: str = ""
    currency: Literal["EUR"] = "EUR"
    vat_rate: Price
    versions: Annotated[list[Version], Field(min_length=1)]

    @field_validator("vat_rate")
    @classmethod
    def _fraction(cls, v: Decimal) -> Decimal:
        if not Decimal(0) <= v < Decimal(1):
            raise ValueError(
                f"is a fraction of the price, from 0 up to (not including) 1: write 0.21 for "
                f"21 % (got {v}, which would be {v * 100:f} %)"
            )
        return v

    @model_validator(mode="after")
    def _ordered(self) -> TariffFile:
        dates = [v.valid_from for v in self.versions]
        if dates != sorted(set(dates)):
            raise ValueError("versions must be listed oldest first, each with its own valid_from")
        return self


@dataclass(frozen=True)
class PricedService:
    """What one event is charged under: the service, and the tariff version that priced it."""

    name: str
    service: Service
    version: str  # e.g. "flexio-payu@2024-01-01"


@dataclass
class TariffVersion:
    label: str
    starts: datetime  # midnight Europe/Brussels of valid_from, timezone-aware
    model: Version
    # (applies_to, destination or None) -> service, built once for fast lookups
    index: dict[tuple[str, str | None], PricedService] = field(default_factory=dict)

    def find(self, applies_to: str, destination: str | None = None) -> PricedService | None:
        found = self.index.get((applies_to, destination))
        if found is None and destination is not None:
            found = self.index.get((applies_to, None))
        return found

    def minimums(self) -> list[PricedService]:
        return [
            p
            for p in {id(p): p for p in self.index.values()}.values()
            if p.service.minimum_monthly is not None
        ]


@dataclass
class Tariff:
    name: str
    vat_rate: Decimal
    versions: list[TariffVersion]  # oldest first

    def prices(self, kind: str, moment: datetime) -> bool:
        """Whether the version in force at `moment` has a service for usage of `kind`
        (e.g. `reroute`): the tariff, not the code, says what is billed."""
        version = self.version_at(moment)
        return version is not None and any(key[0] == kind for key in version.index)

    def version_at(self, moment: datetime) -> TariffVersion | None:
        """The version in force at `moment` (timezone-aware), or None before the first."""
        chosen = None
        for version in self.versions:
            if version.starts <= moment:
                chosen = version
            else:
                break
        return chosen


def _dests(svc: Service) -> list[str | None]:
    return list(svc.destinations) if svc.destinations else [None]


def _build(model: TariffFile) -> Tariff:
    versions = []
    for v in model.versions:
        label = f"{model.name}@{v.valid_from.isoformat()}"
        tv = TariffVersion(label, datetime.combine(v.valid_from, time(0), tzinfo=BRUSSELS), v)
        for name, svc in v.services.items():
            priced = PricedService(name, svc, label)
            for dest in _dests(svc):
                tv.index[(svc.applies_to, dest)] = priced
        versions.append(tv)
    return Tariff(model.name, model.vat_rate, versions)


_ALL_KEYS = sorted({k for m in (TariffFile, Version, Service, Increments) for k in m.model_fields})


def _suggest(problem: Problem) -> Problem:
    # The shared explainer cannot see models inside lists and maps; suggest keys here.
    if not problem.message.endswith(": unknown key"):
        return problem
    key = problem.message.removesuffix(": unknown key").rsplit(".", 1)[-1]
    hint = did_you_mean(key, _ALL_KEYS)
    return replace(problem, message=problem.message + hint) if hint else problem


def load_tariff(path: Path) -> Tariff:
    """Read and check one tariff file; raise ProblemList with file:line:col on mistakes."""
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise ProblemList([doc.problem((), "a tariff file must be a mapping (name:, versions:)")])
    try:
        model = TariffFile.model_validate(doc.data)
    except ValidationError as exc:
        raise ProblemList(
            [_suggest(p) for p in explain_validation_error(exc, doc, TariffFile)]
        ) from None
    if model.name != path.stem:
        raise ProblemList(
            [doc.problem(("name",), f"name '{model.name}' must match the file name '{path.stem}'")]
        )
    return _build(model)


class TariffBook(Mapping[str, Tariff]):
    """All tariffs of a folder, by name."""

    def __init__(self, tariffs: dict[str, Tariff], folder: Path | None = None):
        self._tariffs = tariffs
        self.folder = folder

    def __getitem__(self, name: str) -> Tariff:
        return self._tariffs[name]

    def __iter__(self) -> Any:
        return iter(sorted(self._tariffs))

    def __len__(self) -> int:
        return len(self._tariffs)

    def require(self, name: str) -> Tariff:
        if name not in self._tariffs:
            where = f" in {self.folder}" if self.folder else ""
            raise UserError(
                f"no tariff '{name}'{where}{did_you_mean(name, self._tariffs)}"
                f" (known: {', '.join(self) or 'none'})"
            )
        return self._tariffs[name]


def load_tariffs(folder: Path) -> TariffBook:
    """Every `*.yaml` in `folder`; all problems of all files are reported together."""
    if not folder.is_dir():
        raise UserError(f"tariff folder {folder} not found; set paths.tariffs in flexvoice.yaml")
    tariffs: dict[str, Tariff] = {}
    problems: list[Problem] = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            tariffs[path.stem] = load_tariff(path)
        except ProblemList as exc:
            problems += exc.problems
    if problems:
        raise ProblemList(problems)
    return TariffBook(tariffs, folder)


def tariff_names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []

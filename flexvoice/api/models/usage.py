"""Usage: a month's statement and its export."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flexvoice.api.models.base import (
    Month,
    Query,
    Resource,
)


class UsageQuery(Query):
    month: Month
    service: str | None = Field(None, max_length=64, description="only this service's line")


class UsageExportQuery(Query):
    month: Month
    format: Literal["csv", "json"] = "csv"
    detail: Literal["0", "1", "true", "false"] = "0"


class UsageLine(Resource):
    service: str = Field(
        description="the tariff's service, or subtotal, vat, total, 'unrated: ...'"
    )
    row: Literal["service", "minimum", "subtotal", "vat", "total", "unrated"]
    quantity: str | None = Field(
        description="in `unit`s, a decimal string; for the vat row, the amount it is charged on"
    )
    unit: str
    unit_price_eur: str | None = Field(
        description="decimal string; null when the month mixes tariff versions or for totals"
    )
    amount_eur: str | None = Field(
        description="decimal string rounded to cents; null for events the tariff does not price"
    )


class UsageStatement(Resource):
    account: str
    month: str
    currency: Literal["EUR"]
    lines: list[UsageLine]

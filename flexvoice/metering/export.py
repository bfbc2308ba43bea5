"""Finance exports of a month: CSV or JSON, summary (one row per account and service, then
subtotal, VAT and total) or detail (one row per event). Rows are sorted and numbers printed
the same way every time, so the same data always gives the same bytes."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Literal

from flexvoice.metering.money import fmt_cents, fmt_price, plain
from flexvoice.metering.records import RawDetail, StatementLine

if TYPE_CHECKING:  # the statements call this module for their export
    from flexvoice.metering.statements import Statements

Format = Literal["csv", "json"]
SUMMARY_COLUMNS = (
    "account",
    "month",
    "service",
    "quantity",
    "unit",
    "unit_price_eur",
    "amount_eur",
)
DETAIL_COLUMNS = (
    "account",
    "month",
    "event_id",
    "service",
    "quantity",
    "unit",
    "unit_price_eur",
    "amount_eur",
    "tariff_version",
    "note",
)


def summary_rows(lines: Iterable[StatementLine]) -> Iterator[tuple[str, ...]]:
    for s in lines:
        money_qty = s.row == "vat"  # the VAT row's quantity is the subtotal it is charged on
        qty = (
            ""
            if s.quantity is None
            else (fmt_cents(s.quantity) if money_qty else plain(s.quantity))
        )
        price = ""
        if s.unit_price is not None:
            price = fmt_price(s.unit_price)
        amount = "" if s.amount is None else fmt_cents(s.amount)
        yield (s.account, s.month, s.service, qty, s.unit, price, amount)


class _Amounts:
    """Six-decimal amounts of detail rows with integer arithmetic (exact, no float, fast):
    a price has at most 6 decimals, so price × units is a whole number of micro-euros
    before the division by the divisor (60 for seconds priced per minute)."""

    def __init__(self) -> None:
        self._micro: dict[str, int] = {}

    def micro_price(self, price: str) -> int:
        micro = self._micro.get(price)
        if micro is None:
            micro = self._micro[price] = int(Decimal(price).scaleb(6))
        return micro

    def amount(self, price: str, units: int, divisor: int) -> str:
        num = self.micro_price(price) * units
        micro = (2 * num + divisor) // (2 * divisor)  # half up, on integers
        return f"{micro // 1_000_000}.{micro % 1_000_000:06d}"


def _quantity(units: int, divisor: int) -> str:
    if units % divisor == 0:
        return str(units // divisor)
    return plain(Decimal(units) / divisor)


def detail_rows(month: str, raws: Iterable[RawDetail]) -> Iterator[tuple[str, ...]]:
    amounts = _Amounts()
    for account, event_id, service, units, divisor, unit, price, version, note in raws:
        if units is None or divisor is None or price is None:
            yield (account, month, event_id, service, "", unit, "", "", version, note)
        else:
            yield (
                account,
                month,
                event_id,
                service,
                _quantity(units, divisor),
                unit,
                price,
                amounts.amount(price, units, divisor),
                version,
                note,
            )


def write_export(
    out: IO[str],
    store: Statements,
    month: str,
    account: str | None = None,
    fmt: Format = "csv",
    detail: bool = False,
) -> int:
    """Write the export to a text stream; returns the number of data rows."""
    columns: tuple[str, ...]
    rows: Iterator[tuple[str, ...]]
    if detail:
        columns, rows = DETAIL_COLUMNS, detail_rows(month, store.detail_raw(month, account))
    else:
        columns, rows = SUMMARY_COLUMNS, summary_rows(store.statement(month, account))
    count = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(row)
            count += 1
        return count
    out.write("[")
    for row in rows:
        out.write(",\n" if count else "\n")
        out.write(json.dumps(dict(zip(columns, row, strict=True)), ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def export(
    store: Statements,
    month: str,
    account: str | None = None,
    fmt: Format = "csv",
    detail: bool = False,
) -> bytes:
    buf = io.StringIO()
    write_export(buf, store, month, account, fmt, detail)
    return buf.getvalue().encode("utf-8")

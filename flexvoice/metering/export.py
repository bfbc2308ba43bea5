"""Finance exports of a month: CSV or JSON, summary (one row per account and service, then
subtotal, VAT and total) or detail (one row per event). Rows are sorted and numbers printed
the same way every time, so the same data always gives the same bytes."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import IO, Literal

from flexvoice.metering.money import fmt_cents, fmt_micro, fmt_price, plain
from flexvoice.metering.store import DetailLine, StatementLine, UsageStore

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


def detail_rows(lines: Iterable[DetailLine]) -> Iterator[tuple[str, ...]]:
    for d in lines:
        yield (
            d.account,
            d.month,
            d.event_id,
            d.service,
            "" if d.quantity is None else plain(d.quantity),
            d.unit,
            "" if d.unit_price is None else fmt_price(d.unit_price),
            "" if d.amount is None else fmt_micro(d.amount),
            d.tariff_version,
            d.note,
        )


def write_export(
    out: IO[str],
    store: UsageStore,
    month: str,
    account: str | None = None,
    fmt: Format = "csv",
    detail: bool = False,
) -> int:
    """Write the export to a text stream; returns the number of data rows."""
    columns: tuple[str, ...]
    rows: Iterator[tuple[str, ...]]
    if detail:
        columns, rows = DETAIL_COLUMNS, detail_rows(store.detail(month, account))
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
    store: UsageStore,
    month: str,
    account: str | None = None,
    fmt: Format = "csv",
    detail: bool = False,
) -> bytes:
    buf = io.StringIO()
    write_export(buf, store, month, account, fmt, detail)
    return buf.getvalue().encode("utf-8")

"""/v1/usage: the caller's account's monthly statement and finance export, straight from the
metering store (`UsageStore.statement` and `UsageStore.export`, the same bytes as
`flexvoice usage export --account A`). Nothing here rates or rounds on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web

from flexvoice.api.framework import PRINCIPAL, Resource, request_query
from flexvoice.api.models import UsageExportQuery, UsageLine, UsageQuery, UsageStatement
from flexvoice.api.problems import ProblemError
from flexvoice.appkeys import CONFIG, SHARED_POOL, TARIFFS
from flexvoice.metering.export import summary_rows
from flexvoice.metering.store import UsageStore
from flexvoice.storage.open import open_shared

resource = Resource("usage", "Monthly usage statements and finance exports (metering)")

READ = frozenset({"finance", "analyst"})
T = TypeVar("T")


async def _with_store(request: web.Request, work: Callable[[UsageStore], T]) -> T:
    """Run `work` on a store of its own in a worker thread: a month can hold millions of
    events, and the API's event loop must keep answering meanwhile."""
    app = request.config_dict
    tariffs = app.get(TARIFFS)
    if tariffs is None:
        raise ProblemError(
            "service-unavailable",
            "the tariffs could not be loaded on this node (see its log); usage cannot be "
            "priced until metering/tariffs is fixed",
            headers={"Retry-After": "60"},
        )
    cfg = app[CONFIG]
    pool = app.get(SHARED_POOL)

    def run() -> T:
        if pool is not None:  # PostgreSQL: a kept connection, not one per request
            with pool.connection() as shared:
                return work(UsageStore(shared, tariffs))
        conn = open_shared(cfg)  # SQLite: opening the file is cheap
        try:
            return work(UsageStore(conn, tariffs))
        finally:
            conn.close()

    return await asyncio.to_thread(run)


@resource.op(
    "GET",
    "/usage",
    summary="Read the account's monthly usage statement",
    roles=READ,
    query=UsageQuery,
    response=UsageStatement,
    errors=(400, 401, 403, 429, 503),
)
async def get_usage(request: web.Request) -> web.Response:
    """One line per service with its quantity, unit price and amount (rounded to cents once
    per line), minimum true-ups, subtotal, VAT and total, then one line per reason of events
    the tariff does not price. Amounts are decimal strings. With `service`, only that
    service's line(s)."""
    q = request_query(request, UsageQuery)
    account = request[PRINCIPAL].account
    lines = await _with_store(request, lambda store: store.statement(q.month, account))
    if q.service is not None:
        lines = [s for s in lines if s.service == q.service]
    out = []
    for line, row in zip(lines, summary_rows(lines), strict=True):
        _, _, service, quantity, unit, price, amount = row
        out.append(
            UsageLine(
                service=service,
                row=line.row,  # type: ignore[arg-type]  # the store's rows are the Literal's
                quantity=quantity or None,
                unit=unit,
                unit_price_eur=price or None,
                amount_eur=amount or None,
            )
        )
    doc = UsageStatement(account=account, month=q.month, currency="EUR", lines=out)
    return web.json_response(doc.model_dump())


@resource.op(
    "GET",
    "/usage/export",
    summary="Export the account's month for finance (CSV or JSON)",
    roles=READ,
    query=UsageExportQuery,
    produces="text/csv",
    also_produces=("application/json",),
    errors=(400, 401, 403, 429, 503),
)
async def export_usage(request: web.Request) -> web.Response:
    """The metering export of the caller's account only: the summary (one row per service,
    then subtotal, VAT and total), or with `detail=1` one row per event with its tariff
    version and, for unpriced events, why. The same bytes as
    `flexvoice usage export --month M --account A`."""
    q = request_query(request, UsageExportQuery)
    account = request[PRINCIPAL].account
    detail = q.detail in ("1", "true")
    data = await _with_store(
        request, lambda store: store.export(q.month, account, q.format, detail)
    )
    kind = "detail" if detail else "summary"
    filename = f"usage-{account}-{q.month}-{kind}.{q.format}"
    return web.Response(
        body=data,
        content_type="text/csv" if q.format == "csv" else "application/json",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )

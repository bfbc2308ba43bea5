"""/v1/statistics: the account's call statistics, historical (from the rollups, grouped, JSON or
CSV) and live (calls up, callers waiting, agents ringing or talking, calls per minute), for
analysts, managers and administrators. Every figure is defined in the README's "Call
statistics" section and in flexvoice.statistics.facts."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from flexvoice.api.framework import PRINCIPAL, Resource, request_query
from flexvoice.api.livestream import live_stream
from flexvoice.api.models import Query
from flexvoice.api.models import Resource as Model
from flexvoice.api.problems import ProblemError
from flexvoice.appkeys import CONFIG, SHARED_POOL, STATISTICS
from flexvoice.statistics.period import QueryError
from flexvoice.statistics.query import as_csv, as_json, ask
from flexvoice.statistics.question import GROUPS, make_question
from flexvoice.statistics.service import Statistics
from flexvoice.storage.open import open_shared

READ = frozenset({"analyst", "manager"})

resource = Resource("statistics", "Call statistics, historical and live")


class StatisticsQuery(Query):
    from_: str = Field(
        alias="from",
        min_length=10,
        max_length=32,
        description="first day (2026-03-01) or moment (2026-03-01T08:00), local to tz",
        examples=["2026-03-01"],
    )
    to: str = Field(
        min_length=10,
        max_length=32,
        description="last day, included (2026-03-31), or moment, excluded (2026-04-01T00:00)",
        examples=["2026-03-31"],
    )
    tz: str = Field(
        "UTC", max_length=64, description="IANA time zone", examples=["Europe/Brussels"]
    )
    group_by: str = Field(
        "",
        max_length=100,
        description=f"comma-separated, any of: {', '.join(GROUPS)}",
        examples=["number,hour"],
    )
    number: str | None = Field(None, max_length=32, description="only this number (E.164)")
    flow: str | None = Field(None, max_length=64, description="only this flow")
    queue: str | None = Field(None, max_length=128, description="only this queue")
    direction: Literal["inbound", "outbound"] | None = None
    format: Literal["json", "csv"] = "json"


class StatisticsAnswer(Model):
    account: str
    from_: str = Field(alias="from", description="start of the period, UTC")
    to: str = Field(description="end of the period (excluded), UTC")
    tz: str
    group_by: list[str]
    filters: dict[str, str]
    view: Literal["calls", "queues", "steps", "outcomes"] = Field(
        description="which figures the rows carry: calls (with queue figures), queues, steps "
        "(with menu options) or outcomes"
    )
    rows: list[dict[str, Any]]
    totals: dict[str, Any]


class LiveAnswer(Model):
    account: str
    at: str
    calls_up: int
    by_number: list[dict[str, Any]]
    by_flow: list[dict[str, Any]]
    queues: list[dict[str, Any]]
    agents_ringing: int
    agents_talking: int
    agents: list[dict[str, Any]]
    calls_per_minute: list[int] = Field(description="60 counts, oldest minute first")
    calls_last_hour: int
    nodes: list[dict[str, Any]]


def service(request: web.Request) -> Statistics:
    stats = request.config_dict.get(STATISTICS)
    if stats is None:
        raise ProblemError("service-unavailable", "the statistics are not running on this node")
    return stats


@resource.op(
    "GET",
    "/statistics/calls",
    summary="Read the account's call statistics for a period",
    roles=READ,
    query=StatisticsQuery,
    response=StatisticsAnswer,
    also_produces=("text/csv",),
    errors=(400, 401, 403, 429, 503),
)
async def get_call_statistics(request: web.Request) -> web.Response:
    """Figures of the calls that reached the node in the period (local days and hours of
    `tz`, daylight saving time included), grouped as asked, with totals. Answered from the
    rollups kept as calls end, never by reading every call."""
    q = request_query(request, StatisticsQuery)
    return await answer_calls(request, request[PRINCIPAL].account, q)


async def answer_calls(request: web.Request, account: str, q: StatisticsQuery) -> web.Response:
    """The statistics of `account` as JSON or CSV (also the statistics page's)."""
    # The calls that ended in the last second are still in the collector's batch: written
    # first, so that an answer counts every ended call.
    service(request).flush()
    try:
        question = make_question(
            account, q.from_, q.to, q.tz, q.group_by, q.number, q.flow, q.queue, q.direction
        )
    except QueryError as exc:
        field = str(exc).split(":", 1)[0] if ":" in str(exc) else None
        raise ProblemError("invalid-query-parameter", str(exc), field=field) from None
    cfg = request.config_dict[CONFIG]
    pool = request.config_dict.get(SHARED_POOL)

    def run() -> Any:
        # In a thread, on a connection of its own: a long period must not hold the event
        # loop. The rollups are in the shared store, beside the calls.
        if pool is not None:  # PostgreSQL: a kept connection, not one per request
            with pool.connection() as shared:
                return ask(shared, question)
        conn = open_shared(cfg)  # SQLite: opening the file is cheap
        try:
            return ask(conn, question)
        finally:
            conn.close()

    answer = await asyncio.to_thread(run)
    if q.format == "csv":
        name = f"statistics-{account}-{question.start.date()}-{question.end.date()}.csv"
        return web.Response(
            text=as_csv(answer),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return web.json_response(as_json(answer))


@resource.op(
    "GET",
    "/statistics/live",
    summary="Read the account's live call figures",
    roles=READ,
    response=LiveAnswer,
    errors=(401, 403, 429, 503),
)
async def get_live_statistics(request: web.Request) -> web.Response:
    """Calls up now per number and flow, callers waiting per queue with the longest wait,
    agents ringing or talking, calls started per minute over the last hour; across every node
    that shares this node's Redis, with each node's own figures in `nodes`."""
    account = request[PRINCIPAL].account
    return web.json_response(await service(request).live(account))


@resource.op(
    "GET",
    "/statistics/live/stream",
    summary="Follow the account's live call figures as they change",
    roles=READ,
    produces="text/event-stream",
    errors=(401, 403, 429, 503),
)
async def stream_live_statistics(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: an `event: live` whose data is the same document as
    GET /v1/statistics/live, sent when the figures change (at most twice a second) and at
    least every 5 s; `event: closed` before the node ends the stream (shutdown). The stream
    closes after an hour: clients reconnect (EventSource does so by itself)."""
    return await live_stream(request, service(request), request[PRINCIPAL].account)

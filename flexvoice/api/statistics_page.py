"""What the web console's Statistics view calls: the same figures as /v1/statistics, for a
person logged in to the console (session cookie) whose role reads statistics (analyst,
manager, administrator; not agent). Reading only: no CSRF token is needed."""

from __future__ import annotations

from aiohttp import web

from flexvoice import users
from flexvoice.api.designer_session import COOKIE, SESSION, designer_op
from flexvoice.api.framework import parse_query
from flexvoice.api.livestream import live_stream
from flexvoice.api.problems import ProblemError
from flexvoice.api.sharedreads import read_shared
from flexvoice.api.statistics import StatisticsQuery, answer_calls, service

routes = web.RouteTableDef()


def _reader(request: web.Request) -> str:
    """The session's account, when its role may read the statistics."""
    user = request[SESSION].user
    if not user.can_read_statistics:
        raise ProblemError(
            "forbidden",
            f"your role ({user.role}) does not show the call statistics; an analyst, manager "
            "or administrator of the account can read them",
        )
    return user.account


@routes.get("/designer/api/statistics/calls")
@designer_op()
async def page_calls(request: web.Request) -> web.StreamResponse:
    account = _reader(request)
    return await answer_calls(request, account, parse_query(request, StatisticsQuery))


@routes.get("/designer/api/statistics/live")
@designer_op()
async def page_live(request: web.Request) -> web.StreamResponse:
    account = _reader(request)
    return web.json_response(await service(request).live(account))


@routes.get("/designer/api/statistics/live/stream")
@designer_op()
async def page_live_stream(request: web.Request) -> web.StreamResponse:
    account = _reader(request)
    token = request.cookies.get(COOKIE, "")

    async def still_logged_in() -> bool:
        # Logging out (or the session's expiry, or the user's lock-out) ends the stream.
        found = await read_shared(request.config_dict, lambda c: users.find_session(c, token))
        return found is not None

    return await live_stream(request, service(request), account, still_logged_in)


def install(app: web.Application) -> None:
    app.router.add_routes(routes)

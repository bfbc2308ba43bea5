"""The designer's sessions: who is logged in (a cookie), the CSRF check on every change, the
account's designer option and the role, around each handler of the page's API."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from flexvoice import users
from flexvoice.accounts import designer_enabled
from flexvoice.api import flowfiles
from flexvoice.api.framework import guarded, parse_json, read_body
from flexvoice.api.problems import ProblemError
from flexvoice.api.sharedreads import read_shared
from flexvoice.appkeys import SHARED_DB

COOKIE = "fv_session"
CSRF_HEADER = "X-CSRF-Token"
WEB_DIST = Path(__file__).resolve().parent.parent.parent / "web" / "dist"
STATIC_FILES = (
    "designer.js",
    "designer.css",
    "designer.js.map",
    "designer.css.map",
    "designer.js.LEGAL.txt",
    "LICENSES.txt",
)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
SESSION = web.RequestKey("designer_session", users.Session)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def security_headers(response: web.StreamResponse) -> web.StreamResponse:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def same_origin(request: web.Request) -> bool:
    """A change must come from a page of this node (browsers send Origin on POST)."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.host


async def session_of(request: web.Request) -> users.Session | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    return await read_shared(request.config_dict, lambda conn: users.find_session(conn, token))


def designer_op(
    *, edit: bool = False, flow_lock: bool = True, admin: bool = False
) -> Callable[[Handler], Handler]:
    """Session, designer option, role and (for changes) CSRF checks around a JSON handler."""

    def decorate(fn: Handler) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            session = await session_of(request)
            if session is None:
                raise ProblemError(
                    "unauthenticated", "you are not logged in (or the session ended); log in again"
                )
            if request.method not in ("GET", "HEAD"):
                sent = request.headers.get(CSRF_HEADER, "")
                if not same_origin(request) or not hmac.compare_digest(sent, session.csrf):
                    raise ProblemError(
                        "forbidden",
                        "this change did not come from the designer page (CSRF check failed); "
                        "reload the page and try again",
                    )
            account = session.user.account
            if not designer_enabled(request.config_dict[SHARED_DB], account):
                raise ProblemError(
                    "forbidden",
                    f"the visual designer is not switched on for account '{account}'; ask your "
                    "operator to switch it on",
                )
            if edit and not session.user.can_edit:
                raise ProblemError(
                    "forbidden",
                    f"your role ({session.user.role}) may read and try flows, not change them; "
                    "a manager or administrator can",
                )
            if admin and session.user.role != "administrator":
                raise ProblemError(
                    "forbidden",
                    f"your role ({session.user.role}) may not manage users; an administrator "
                    "of the account can",
                )
            request[SESSION] = session
            if not edit or not flow_lock:
                return security_headers(await fn(request))
            # Changes read the draft, parse off the event loop and write: one at a time per
            # node, together with PUT /v1/flows (the same files).
            async with flowfiles.write_lock(request.app):
                return security_headers(await fn(request))

        handler.__name__ = fn.__name__
        return guarded(handler)

    return decorate


def json_response(doc: Any, status: int = 200, etag: str | None = None) -> web.Response:
    response = web.json_response(doc, status=status)
    if etag is not None:
        response.headers["ETag"] = f'"{etag}"'
    return response


async def json_body(request: web.Request) -> dict[str, Any]:
    data = parse_json(await read_body(request))
    if not isinstance(data, dict):
        raise ProblemError("invalid-body", "the body must be a JSON object")
    return data

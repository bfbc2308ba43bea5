"""What the handlers of an account's resources share (recordings, conferences, messages,
verifications, ...): the node part a resource is served by, or 503 when this node has none;
the thing a path names in the caller's account, or 404 (another account's thing is as absent
as a missing one: whether it exists is not this account's business); the JSON answer, checked
against its model (the OpenAPI schema) on the way out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from flexvoice.api.framework import PRINCIPAL
from flexvoice.api.problems import ProblemError

T = TypeVar("T")


def node_part(
    where: web.Request | Mapping[Any, Any],
    key: web.AppKey[T],
    unavailable: str,
    *,
    retry_after: int | None = None,
) -> T:
    """The node's part under `key` (a request's, or the application's); when this node runs
    without it, a 503 saying `unavailable` ("recordings are not available on this node"), with
    Retry-After when the part may come back (a service still starting)."""
    app: Mapping[Any, Any] = where.config_dict if isinstance(where, web.Request) else where
    found: T | None = app.get(key)
    if found is None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        raise ProblemError("service-unavailable", unavailable, headers=headers)
    return found


def account_of(request: web.Request) -> str:
    """The account the request's key belongs to: every read and write is scoped to it."""
    return request[PRINCIPAL].account


def owned(request: web.Request, param: str, what: str, lookup: Callable[[str, str], T | None]) -> T:
    """What the path parameter `param` names, looked up as `lookup(id, account)` in the
    caller's account; otherwise 404 "no {what} '{id}' in this account" on that parameter."""
    ident = request.match_info[param]
    found = lookup(ident, account_of(request))
    if found is None:
        raise ProblemError("not-found", f"no {what} '{ident}' in this account", field=param)
    return found


def answer(model: type[BaseModel], data: Any, status: int = 200) -> web.Response:
    """`data` as the resource's JSON, validated by its model (aliases such as `from` used)."""
    return web.json_response(model.model_validate(data).model_dump(by_alias=True), status=status)

"""The shape shared by the resources an account owns and a node service serves (messages,
verifications): the service, or 503 while it is not running; a row answered through its
response model; 404 naming the id, the same for a missing id and another account's (account
isolation does not tell which ids exist)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from flexvoice.api.problems import ProblemError

T = TypeVar("T")


def running(request: web.Request, key: web.AppKey[T], what: str) -> T:
    found = request.config_dict.get(key)
    if found is None:
        raise ProblemError(
            "service-unavailable",
            f"{what} is not running on this node",
            headers={"Retry-After": "30"},
        )
    return found


def answer(
    model: type[BaseModel],
    doc: Mapping[str, Any],
    status: int = 200,
    location: str | None = None,
) -> web.Response:
    """The document validated by its response model (what /openapi.json promises)."""
    response = web.json_response(model.model_validate(doc).model_dump(by_alias=True), status=status)
    if location is not None:
        response.headers["Location"] = location
    return response


def not_found(field: str, value: str, what: str) -> ProblemError:
    return ProblemError("not-found", f"no {what} '{value}' in this account", field=field)

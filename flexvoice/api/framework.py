"""What every resource module shares: one `Resource` (its route table and the operations the
OpenAPI document is written from), role checks, JSON bodies and query strings validated by
pydantic models (unknown fields rejected), and Idempotency-Key handling.

A handler is declared once with its models and roles:

    calls = Resource("calls", "Outbound and inbound calls")

    @calls.op("POST", "/calls", body=CallCreate, response=CallResource, status=201,
              roles=WRITE_CALLS, idempotent=True, summary="Place an outbound call")
    async def create_call(request: web.Request) -> web.Response:
        body = request_body(request, CallCreate)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from flexvoice.accounts import Account, get_account
from flexvoice.api.guards import (
    StoredResponse,
    retry_after_header,
)
from flexvoice.api.keys import Principal, verify_key
from flexvoice.api.problems import ProblemError, from_validation_error
from flexvoice.api.sharedreads import read_shared
from flexvoice.appkeys import IDEMPOTENCY, KEY_CHECKS, LOCKOUT
from flexvoice.logs import get_logger
from flexvoice.storage.engine import Connection
from flexvoice.storage.readcache import ReadCache

log = get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)

PRINCIPAL = web.RequestKey("principal", Principal)
BODY = web.RequestKey("body", BaseModel)
QUERY = web.RequestKey("query", BaseModel)
MAX_BODY_BYTES = 1024 * 1024  # the node application's client_max_size

ALL_ROLES = frozenset({"admin", "developer", "finance", "analyst", "manager"})


@dataclass
class Operation:
    method: str
    path: str  # relative to /v1
    summary: str
    roles: frozenset[str]
    tag: str
    operation_id: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    produces: str = "application/json"  # or "image/svg+xml", "audio/wav", "text/csv" ...
    also_produces: tuple[str, ...] = ()  # other 2xx types (an export as CSV or JSON)
    consumes: tuple[str, ...] = ("application/json",)
    idempotent: bool = False
    description: str = ""
    errors: tuple[int, ...] = ()


@dataclass
class Resource:
    tag: str
    description: str
    routes: web.RouteTableDef = field(default_factory=web.RouteTableDef)
    operations: list[Operation] = field(default_factory=list)

    def op(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        roles: frozenset[str],
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        produces: str = "application/json",
        also_produces: tuple[str, ...] = (),
        consumes: tuple[str, ...] = ("application/json",),
        idempotent: bool = False,
        description: str = "",
        errors: tuple[int, ...] = (),
        parse_body: bool = True,
    ) -> Callable[[Handler], Handler]:
        def decorate(fn: Handler) -> Handler:
            operation = Operation(
                method=method,
                path=path,
                summary=summary,
                roles=roles | {"admin"},
                tag=self.tag,
                operation_id=fn.__name__,
                body=body,
                query=query,
                response=response,
                status=status,
                produces=produces,
                also_produces=also_produces,
                consumes=consumes,
                idempotent=idempotent,
                description=description or (fn.__doc__ or "").strip(),
                errors=errors,
            )
            self.operations.append(operation)

            async def handler(request: web.Request) -> web.StreamResponse:
                principal = request[PRINCIPAL]
                if principal.role not in operation.roles:
                    allowed = ", ".join(sorted(operation.roles))
                    raise ProblemError(
                        "forbidden",
                        f"a key with role '{principal.role}' may not {summary[0].lower()}"
                        f"{summary[1:]}; this needs one of: {allowed}",
                    )
                if query is not None:
                    request[QUERY] = parse_query(request, query)
                if body is not None and parse_body:
                    request[BODY] = parse_json_body(await read_body(request), body)
                if idempotent:
                    return await with_idempotency(request, fn)
                return await fn(request)

            handler.__name__ = fn.__name__
            self.routes.route(method, path)(guarded(authenticated(handler)))
            return fn

        return decorate


def request_body(request: web.Request, model: type[M]) -> M:
    value = request[BODY]
    assert isinstance(value, model)
    return value


def request_query(request: web.Request, model: type[M]) -> M:
    value = request[QUERY]
    assert isinstance(value, model)
    return value


async def read_body(request: web.Request) -> bytes:
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise body_too_large()
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise body_too_large() from None


def body_too_large() -> ProblemError:
    return ProblemError(
        "body-too-large",
        f"the request body is larger than {MAX_BODY_BYTES} bytes (1 MiB); send less "
        "(large flows: split them; audio is not uploaded through this API)",
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise ProblemError("invalid-body", "the request needs a JSON object body, e.g. {}")
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise ProblemError("malformed-json", "the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ProblemError(
            "malformed-json",
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            extra={"line": exc.lineno, "column": exc.colno},
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ProblemError("malformed-json", f"the body is not valid JSON: {exc}") from None


def parse_json_body(raw: bytes, model: type[M]) -> M:
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise ProblemError(
            "invalid-body", f"the body must be a JSON object, not {type(data).__name__}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def parse_query(request: web.Request, model: type[M]) -> M:
    values: dict[str, Any] = {}
    for key in request.query:
        got = request.query.getall(key)
        if len(got) > 1:
            raise ProblemError(
                "invalid-query-parameter", f"{key}: give it once (got {len(got)} values)", field=key
            )
        values[key] = got[0]
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise from_validation_error(exc, query=True) from None


# ---- Idempotency-Key ----------------------------------------------------------------------

MAX_KEY_LENGTH = 255


def _fingerprint(request: web.Request) -> str:
    body = request.get(BODY)
    canonical = json.dumps(
        body.model_dump(mode="json", by_alias=True) if body is not None else None,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(f"{request.method} {request.path}\n{canonical}".encode()).hexdigest()


async def with_idempotency(request: web.Request, fn: Handler) -> web.StreamResponse:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return await fn(request)
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ProblemError(
            "invalid-field",
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters "
            "(a UUID is a good choice)",
            field="Idempotency-Key",
        )
    store = request.config_dict[IDEMPOTENCY]
    scope = request[PRINCIPAL].account
    stored = await store.begin(scope, key, _fingerprint(request))
    if stored is not None:
        return web.Response(
            status=stored.status,
            body=stored.body,
            headers={"Content-Type": stored.content_type, "Idempotent-Replayed": "true"},
        )
    try:
        response = await fn(request)
    except ProblemError as exc:
        response = exc.response(request.path)
    except BaseException:
        await store.abandon(scope, key)
        raise
    if response.status >= 500 or not isinstance(response, web.Response):
        await store.abandon(scope, key)
        return response
    body = response.body
    raw = body if isinstance(body, bytes) else (response.text or "").encode()
    await store.finish(
        scope, key, StoredResponse(response.status, raw, response.content_type or "")
    )
    return response


def retry_after_seconds(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


# ---- the chain every /v1 handler runs in --------------------------------------------------


def _problem_for_http(exc: web.HTTPException) -> ProblemError:
    if exc.status == 404:
        return ProblemError("not-found", "no such resource or route; see /docs for the API")
    if exc.status == 405:
        allow = exc.headers.get("Allow", "")
        return ProblemError(
            "method-not-allowed",
            f"this route does not take that method; allowed: {allow}",
            headers={"Allow": allow},
        )
    if exc.status == 413:
        return body_too_large()
    return ProblemError("internal-error", exc.reason, status=exc.status)


def guarded(fn: Handler) -> Handler:
    """Whatever goes wrong becomes a problem document; a bug is logged, never shown."""

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            return await fn(request)
        except ProblemError as exc:
            return exc.response(request.path)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _problem_for_http(exc).response(request.path)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("api.internal_error", method=request.method, path=request.path)
            return ProblemError(
                "internal-error", "the server failed to handle this request; it has been logged"
            ).response(request.path)

    handler.__name__ = fn.__name__
    return handler


def _locked(seconds: float) -> ProblemError:
    return ProblemError(
        "too-many-failed-authentications",
        "too many failed authentications from this address; try again after Retry-After seconds",
        headers={"Retry-After": retry_after_header(seconds)},
    )


def authenticated(fn: Handler) -> Handler:
    """Bearer key -> PRINCIPAL; failed attempts count towards the address's lockout."""

    async def handler(request: web.Request) -> web.StreamResponse:
        lockout = request.config_dict[LOCKOUT]
        address = request.remote or "unknown"
        left = await lockout.locked_for(address)
        if left > 0:
            raise _locked(left)
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise ProblemError(
                "unauthenticated",
                "send your API key as 'Authorization: Bearer <key>' (create one with "
                "'flexvoice keys create --account A --role developer')",
                field="Authorization",
                headers={"WWW-Authenticate": 'Bearer realm="flexvoice"'},
            )
        principal, account = None, None
        if scheme.lower() == "bearer":
            principal, account = await _checked_key(request, token)
        if principal is None:
            locked = await lockout.failed(address)
            if locked > 0:  # this attempt is answered as failed; the next ones get 429
                log.warning("api.lockout", address=address, seconds=locked)
            raise ProblemError(
                "invalid-key",
                "the API key is not valid (unknown, revoked or mistyped); after repeated "
                "failures this address is locked out for a while",
                field="Authorization",
                headers={"WWW-Authenticate": 'Bearer realm="flexvoice", error="invalid_token"'},
            )
        if account is None or account.status != "active":
            raise ProblemError(
                "account-suspended",
                f"account '{principal.account}' is suspended; contact the operator",
            )
        request[PRINCIPAL] = principal
        return await fn(request)

    handler.__name__ = fn.__name__
    return handler


KeyCheck = ReadCache[str, tuple[Principal, Account | None]]


async def _checked_key(request: web.Request, token: str) -> tuple[Principal | None, Account | None]:
    """The key's principal and its account. A key that checked out is kept with its account
    (KEY_CHECKS, a ReadCache: until this process writes keys or accounts, another
    connection commits on SQLite - at most 50 ms late - or a second passes on PostgreSQL),
    so a client's stream of requests does not read both rows for each one; a suspension or
    a revocation applies within that time."""
    checks = request.config_dict.get(KEY_CHECKS)
    found = checks.peek(token) if checks is not None else None
    if found is not None:
        return found
    principal, account = await read_shared(
        request.config_dict, lambda conn: _key_and_account(conn, token)
    )
    if checks is not None and principal is not None:
        checks.put(token, (principal, account))
    return principal, account


def _key_and_account(conn: Connection, token: str) -> tuple[Principal | None, Account | None]:
    principal = verify_key(conn, token.strip())
    return principal, get_account(conn, principal.account) if principal is not None else None


async def no_route(request: web.Request) -> web.StreamResponse:
    """Catch-all under /v1: 405 when another route has this path, else 404."""
    allowed: set[str] = set()
    for res in request.app.router.resources():
        if res.canonical.startswith("/v1/{tail"):
            continue
        _, methods = await res.resolve(request)
        allowed |= methods
    if allowed:
        allow = ", ".join(sorted(allowed))
        raise ProblemError(
            "method-not-allowed",
            f"{request.method} is not allowed on {request.path}; allowed: {allow}",
            headers={"Allow": allow},
        )
    raise ProblemError("not-found", f"no route {request.path}; see /docs for the API")

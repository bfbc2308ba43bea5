"""/v1/calls: place, list, read, hang up or move calls; each call's step-by-step trace."""

from __future__ import annotations

import asyncio
import difflib
import ipaddress
import json
from typing import cast
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from flexvoice.api import recordings, remote
from flexvoice.api.dialer import FlowStarter
from flexvoice.api.flows import checked_flow
from flexvoice.api.framework import (
    ALL_ROLES,
    PRINCIPAL,
    Resource,
    request_body,
    request_query,
)
from flexvoice.api.models import (
    CallCreate,
    CallEvents,
    CallList,
    CallListQuery,
    CallResource,
    CallUpdate,
)
from flexvoice.api.originate import check_from_number, originate
from flexvoice.api.problems import ProblemError
from flexvoice.appkeys import CALLS, CONFIG, DIALER, FLOWS, ORIGINATOR
from flexvoice.calls import CallRecord
from flexvoice.flows.model import Flow

resource = Resource("calls", "Outbound calls placed over REST and inbound calls, with outcomes")

PLACE = frozenset({"developer"})
READ = frozenset({"developer", "analyst"})
MAX_FLOW_BYTES = 256 * 1024  # a flow_url document; the largest real flows are a few KiB
assert READ <= ALL_ROLES


def _flows(request: web.Request) -> FlowStarter | None:
    # The flow runtime takes variables= and observer= too; the SIP layer's key types less.
    return cast(FlowStarter | None, request.config_dict.get(FLOWS))


def _json(request: web.Request, call: CallRecord, status: int = 200) -> web.Response:
    body = request.config_dict[CALLS].resource(call)
    return web.json_response(
        CallResource.model_validate(body).model_dump(by_alias=True), status=status
    )


def _find(request: web.Request) -> CallRecord:
    call_id = request.match_info["call_id"]
    call = request.config_dict[CALLS].get(call_id, request[PRINCIPAL].account)
    if call is None:  # another account's call is "not found" too: no existence oracle
        raise ProblemError("not-found", f"no call '{call_id}' in this account", field="call_id")
    return call


async def _here_or_owner(request: web.Request) -> CallRecord | web.Response:
    """The call from this node's registry, or the answer of the node that holds it."""
    try:
        return _find(request)
    except ProblemError:
        answer = await remote.to_owner(request, request.match_info["call_id"])
        if answer is None:
            raise
        return answer


@resource.op(
    "POST",
    "/calls",
    summary="Place an outbound call",
    roles=PLACE,
    body=CallCreate,
    response=CallResource,
    status=201,
    idempotent=True,
    errors=(400, 401, 403, 404, 409, 413, 422, 429, 503),
)
async def create_call(request: web.Request) -> web.Response:
    """Rings `to` from one of the account's numbers; when answered, the flow runs. Answers at
    once with the call in status `queued`; follow it with GET or status callbacks."""
    body = request_body(request, CallCreate)
    principal = request[PRINCIPAL]
    app = request.config_dict
    cfg = app[CONFIG]
    check_from_number(app, principal.account, body.from_)
    if body.status_callback is not None and not cfg.api.private_urls:
        inner = await _private_address(str(body.status_callback))
        if inner is not None:
            raise ProblemError(
                "invalid-field",
                f"status_callback: {inner} is a loopback, private or reserved address; status "
                "callbacks go to the public internet (api.private_urls allows it on a "
                "development node)",
                field="status_callback",
            )
    document: Flow | None = None
    source = None
    if body.flow_inline is not None or body.flow_url is not None:
        field = "flow_inline" if body.flow_inline is not None else "flow_url"
        if _flows(request) is None:
            raise ProblemError(
                "service-unavailable",
                f"{field} needs the flow runtime, which is not running on this node",
                field=field,
            )
        document = await _flow_document(request, body)
        # The trace says which document ran: the flow is not a file anyone can look up later.
        source = "inline" if body.flow_inline is not None else str(body.flow_url)
    if body.flow is not None:
        _check_flow_name(request, body.flow)
    call = await originate(
        app,
        principal.account,
        from_=body.from_,
        to=body.to,
        flow=body.flow,
        document=document,
        document_source=source,
        ring_timeout=float(body.ring_timeout),
        variables=body.variables,
        status_callback=str(body.status_callback) if body.status_callback else None,
        status_events=tuple(body.status_events),
        record=body.record,
        recording_channels=2 if body.recording_channels == "dual" else 1,
    )
    response = _json(request, call, 201)
    response.headers["Location"] = f"/v1/calls/{call.id}"
    return response


def _check_flow_name(request: web.Request, name: str) -> None:
    """A named flow must be loaded before anything rings (422 unknown-flow, did you mean)."""
    runtime = _flows(request)
    if runtime is None:
        raise ProblemError(
            "service-unavailable",
            f"flow: the flow runtime is not running on this node, so '{name}' cannot run",
            field="flow",
        )
    known = sorted(runtime.flows)
    if name in known:
        return
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    names = ", ".join(known) if known else "none are loaded"
    raise ProblemError(
        "unknown-flow",
        f"flow: no flow named '{name}'; {hint}the flows on this node are: {names} "
        "(GET /v1/flows lists them)",
        field="flow",
    )


async def _flow_document(request: web.Request, body: CallCreate) -> Flow:
    """flow_inline or flow_url as a validated Flow (the CLI's validator), or the 422."""
    cfg = request.config_dict[CONFIG]
    prompts_dir = cfg.path(cfg.paths.prompts)
    if body.flow_inline is not None:
        # JSON is YAML: the validator reads the document pretty-printed, so line and column
        # point into json.dumps(flow_inline, indent=2); messages name the keys as well.
        text = json.dumps(body.flow_inline, indent=2, ensure_ascii=False)
        return await checked_flow(text, "flow_inline", prompts_dir, "flow_inline", "flow_inline")
    assert body.flow_url is not None
    url = str(body.flow_url)
    text = await fetch_flow(url, cfg.api.webhook_timeout, cfg.api.private_urls)
    return await checked_flow(text, url, prompts_dir, "flow_url", f"the flow at {url}")


async def _private_address(url: str) -> str | None:
    """The first address `url`'s host resolves to that is not public, if any."""
    host = urlsplit(url).hostname or ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError:
        return None  # the fetch itself reports the name that does not resolve
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not address.is_global:
            return str(address)
    return None


async def fetch_flow(url: str, timeout_s: float, private_ok: bool = False) -> str:
    """GET a flow document: a time limit, a size limit, text only; else a 422 naming it.
    Unless `api.private_urls`, the host must resolve to public addresses only and
    redirects are not followed, so a caller cannot make the node read its own network."""

    def refused(why: str) -> ProblemError:
        return ProblemError(
            "invalid-field", f"flow_url: could not fetch {url}: {why}", field="flow_url"
        )

    if not private_ok:
        inner = await _private_address(url)
        if inner is not None:
            raise refused(
                f"{inner} is a loopback, private or reserved address; flow_url must be on "
                "the public internet (api.private_urls allows it on a development node)"
            )
    try:
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, allow_redirects=private_ok, max_redirects=3) as resp,
        ):
            if resp.status != 200:
                raise refused(f"it answered HTTP {resp.status}; it must answer 200 with YAML")
            if resp.content_length is not None and resp.content_length > MAX_FLOW_BYTES:
                raise refused(f"it is larger than {MAX_FLOW_BYTES} bytes")
            data = await resp.content.read(MAX_FLOW_BYTES + 1)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        why = "no answer in time" if isinstance(exc, TimeoutError) else str(exc) or repr(exc)
        raise refused(why) from None
    if len(data) > MAX_FLOW_BYTES:
        raise refused(f"it is larger than {MAX_FLOW_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise refused("it is not UTF-8 text") from None


@resource.op(
    "GET",
    "/calls",
    summary="List calls",
    roles=READ,
    query=CallListQuery,
    response=CallList,
    errors=(400, 401, 403, 429),
)
async def list_calls(request: web.Request) -> web.Response:
    """Newest first; filter by status, from, to and since."""
    q = request_query(request, CallListQuery)
    registry = request.config_dict[CALLS]
    # Every node of a cluster lists from the shared store (a cluster needs PostgreSQL).
    calls = registry.list(
        request[PRINCIPAL].account,
        status=q.status,
        from_number=q.from_,
        to_number=q.to,
        since=q.since.isoformat() if q.since else None,
        limit=q.limit,
    )
    doc = CallList.model_validate({"calls": [registry.resource(c) for c in calls]})
    return web.json_response(doc.model_dump(by_alias=True))


@resource.op(
    "GET",
    "/calls/{call_id}",
    summary="Read a call",
    roles=READ,
    response=CallResource,
    errors=(401, 403, 404, 429),
)
async def get_call(request: web.Request) -> web.Response:
    """Status, SIP status, cause, times, billable seconds and price in one place."""
    call = await _here_or_owner(request)
    return call if isinstance(call, web.Response) else _json(request, call)


@resource.op(
    "POST",
    "/calls/{call_id}",
    summary="Hang up or move a call",
    roles=PLACE,
    body=CallUpdate,
    response=CallResource,
    idempotent=True,
    errors=(400, 401, 403, 404, 409, 422, 429),
)
async def update_call(request: web.Request) -> web.Response:
    """`{"status": "completed"}` hangs up (cancels a call still ringing);
    `{"flow": "name"}` moves an answered call to another flow;
    `{"recording": "start"|"pause"|"resume"|"stop"}` controls its whole-call recording."""
    body = request_body(request, CallUpdate)
    call = await _here_or_owner(request)
    if isinstance(call, web.Response):
        return call
    app = request.config_dict
    if call.final:
        raise ProblemError(
            "conflict", f"call {call.id} already ended ({call.status})", field="status"
        )
    dialer = app[DIALER]
    if body.status is not None:
        originator = app.get(ORIGINATOR)
        ended = await dialer.hangup(call.id)
        if not ended and originator is not None:
            ended = await originator.hangup(call.id, "api")  # inbound, or a dialled leg
        if not ended and (answer := await remote.to_owner(request, call.id)) is not None:
            return answer  # the calls store is shared, the call held by another node
        if not ended:
            raise ProblemError(
                "conflict",
                f"call {call.id} is not held by this node (another node holds it, or it "
                "is ending); it cannot be hung up from here",
                field="status",
            )
    elif body.recording is not None:
        channels = 2 if body.recording_channels == "dual" else 1
        await recordings.control(app, call, body.recording, channels)
    else:
        assert body.flow is not None
        if call.status != "in-progress" or not await dialer.move(call, _flows(request), body.flow):
            raise ProblemError(
                "conflict",
                f"call {call.id} is {call.status}; only an answered call can move to a flow",
                field="flow",
            )
    updated = app[CALLS].get(call.id)
    assert updated is not None
    return _json(request, updated)


@resource.op(
    "GET",
    "/calls/{call_id}/events",
    summary="Read a call's step-by-step trace",
    roles=READ,
    response=CallEvents,
    errors=(401, 403, 404, 429),
)
async def call_events(request: web.Request) -> web.Response:
    """Every SIP outcome and flow step of the call, in order, to debug a flow."""
    call = await _here_or_owner(request)
    if isinstance(call, web.Response):
        return call
    events = request.config_dict[CALLS].events(call.id)
    doc = CallEvents.model_validate({"call_id": call.id, "events": events})
    return web.json_response(doc.model_dump(by_alias=True))

"""/v1/messages: send SMS, read them (outbound and inbound), list them."""

from __future__ import annotations

from aiohttp import web

from flexvoice.api.framework import Resource, request_body, request_query
from flexvoice.api.models import MessageCreate, MessageList, MessageListQuery, MessageResource
from flexvoice.api.problems import ProblemError
from flexvoice.api.resources import account_of, answer, node_part, owned
from flexvoice.api.sharedreads import read_shared
from flexvoice.appkeys import MESSAGING
from flexvoice.messaging.service import MessageRefused, Messaging
from flexvoice.messaging.store import MessageReader

resource = Resource("messages", "SMS sent over REST or by flows, and SMS received")

SEND = frozenset({"developer"})
READ = frozenset({"developer", "analyst"})


def service(request: web.Request) -> Messaging:
    return node_part(request, MESSAGING, "messaging is not running on this node", retry_after=30)


def refused(exc: MessageRefused) -> ProblemError:
    extra = {"error_code": exc.code} if exc.code is not None else None
    headers = {"Retry-After": "30"} if exc.kind == "service-unavailable" else None
    return ProblemError(exc.kind, str(exc), field=exc.field, extra=extra, headers=headers)


@resource.op(
    "POST",
    "/messages",
    summary="Send an SMS",
    roles=SEND,
    body=MessageCreate,
    response=MessageResource,
    status=201,
    idempotent=True,
    errors=(400, 401, 403, 409, 413, 422, 429, 503),
)
async def create_message(request: web.Request) -> web.Response:
    """Stores the message and answers 201 with it `queued`; the queue sends it (a gateway
    that is down is retried with back-off, nothing is lost or sent twice). Follow it with
    GET or `status_callback`."""
    body = request_body(request, MessageCreate)
    messaging = service(request)
    try:
        row = await messaging.accept(
            account_of(request),
            body.from_,
            body.to,
            body.body,
            status_callback=str(body.status_callback) if body.status_callback else None,
        )
    except MessageRefused as exc:
        raise refused(exc) from None
    # The resource as `answer` would give it, without validating it again per message (3 % of
    # the node's CPU per message): resource() builds exactly MessageResource's fields, which
    # a unit test holds it to (test_messaging_core).
    response = web.json_response(messaging.resource(row), status=201)
    response.headers["Location"] = f"/v1/messages/{row.id}"
    return response


@resource.op(
    "GET",
    "/messages",
    summary="List messages",
    roles=READ,
    query=MessageListQuery,
    response=MessageList,
    errors=(400, 401, 403, 429),
)
async def list_messages(request: web.Request) -> web.Response:
    """Newest first; filter by status, to and since."""
    q = request_query(request, MessageListQuery)
    messaging = service(request)
    account = account_of(request)
    rows = await read_shared(
        request.app,
        lambda conn: MessageReader(conn).list(
            account,
            status=q.status,
            to=q.to,
            since=q.since.timestamp() if q.since else None,
            limit=q.limit,
        ),
    )
    return answer(MessageList, {"messages": [messaging.resource(r) for r in rows]})


@resource.op(
    "GET",
    "/messages/{message_id}",
    summary="Read a message",
    roles=READ,
    response=MessageResource,
    errors=(401, 403, 404, 429),
)
async def get_message(request: web.Request) -> web.Response:
    """Status, segments, encoding, price and the error on failure."""
    messaging = service(request)
    found = await read_shared(
        request.app,
        lambda conn: MessageReader(conn).get(request.match_info["message_id"], account_of(request)),
    )
    # A code's SMS belongs to its verification: not listed, not readable here.
    visible = None if found is None or found.origin == "verification" else found
    row = owned(request, "message_id", "message", lambda _id, _account: visible)
    return answer(MessageResource, messaging.resource(row))

"""/v1/conferences: live rooms and their participants, dialling someone into a room,
mute / unmute / kick; and the conference component of `flexvoice serve`."""

from __future__ import annotations

import json
import re
from typing import Any, Literal, cast

from aiohttp import web
from pydantic import Field, HttpUrl

from flexvoice.api.dialer import FlowStarter
from flexvoice.api.flows import checked_flow
from flexvoice.api.framework import PRINCIPAL, Resource, request_body
from flexvoice.api.models import E164, CallResource, Request
from flexvoice.api.models import Resource as Doc
from flexvoice.api.problems import ProblemError
from flexvoice.api.resources import account_of, answer, node_part, owned
from flexvoice.appkeys import CALLS, CONFERENCES, CONFIG, DIALER, FLOWS, NUMBERS, ORIGINATOR
from flexvoice.conference.room import Room
from flexvoice.conference.service import ConferenceService

resource = Resource("conferences", "Conference rooms: participants, dial-in, moderation")

READ = frozenset({"developer", "analyst"})
CONTROL = frozenset({"developer"})
ROOM_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"


class ParticipantDoc(Doc):
    call_id: str
    moderator: bool
    muted: bool
    status: Literal["in-room", "waiting"]
    talking: bool = Field(
        description="speaking now (the level of what it sends, see talking_seconds)"
    )
    talking_seconds: float = Field(
        description="seconds spoken in the room: talk spurts above a speech level, pauses "
        "under 0.5 s included; not counted while muted"
    )
    joined_at: str | None


class ConferenceDoc(Doc):
    id: str = Field(description="this set-up of the room (CF...); billed once")
    room: str
    status: Literal["waiting", "in-progress", "ended"]
    started_at: str | None
    max_participants: int
    participants: list[ParticipantDoc]


class ConferenceList(Doc):
    conferences: list[ConferenceDoc]


class ParticipantCreate(Request):
    """Ring `to` from one of the account's numbers; when answered, it joins the room."""

    to: E164
    from_: E164 = Field(alias="from", description="one of the account's numbers (caller ID)")
    moderator: bool = False
    muted: bool = False
    ring_timeout: int = Field(60, ge=1, le=600)
    status_callback: HttpUrl | None = Field(
        None, description="URL for the room's conference.* webhooks and this call's status"
    )


class ParticipantUpdate(Request):
    action: Literal["mute", "unmute", "kick"]


def _service(request: web.Request) -> ConferenceService:
    return node_part(request, CONFERENCES, "conferences are not available on this node")


def _room(request: web.Request) -> Room:
    service = _service(request)
    return owned(request, "room", "conference room", lambda n, a: service.get(a, n))


@resource.op(
    "GET",
    "/conferences",
    summary="List rooms in progress",
    roles=READ,
    response=ConferenceList,
    errors=(401, 403, 429),
)
async def list_conferences(request: web.Request) -> web.Response:
    rooms = _service(request).rooms_of(account_of(request))
    return answer(ConferenceList, {"conferences": [r.resource() for r in rooms]})


@resource.op(
    "GET",
    "/conferences/{room}",
    summary="Read a room and its participants",
    roles=READ,
    response=ConferenceDoc,
    errors=(401, 403, 404, 429),
)
async def get_conference(request: web.Request) -> web.Response:
    return answer(ConferenceDoc, _room(request).resource())


@resource.op(
    "POST",
    "/conferences/{room}/participants",
    summary="Dial someone into a room",
    roles=CONTROL,
    body=ParticipantCreate,
    response=CallResource,
    status=201,
    idempotent=True,
    errors=(400, 401, 403, 404, 409, 422, 429, 503),
)
async def add_participant(request: web.Request) -> web.Response:
    """Places a call (a call resource, as POST /v1/calls); once answered it joins the room,
    which is set up if it is not in progress yet."""
    name = request.match_info["room"]
    if not re.match(ROOM_PATTERN, name):
        raise ProblemError(
            "invalid-field",
            f"room: '{name}' is not a room name; use letters, digits, '.', '-' and '_'",
            field="room",
        )
    body = request_body(request, ParticipantCreate)
    principal = request[PRINCIPAL]
    app = request.config_dict
    _service(request)
    number = app[NUMBERS].lookup(body.from_)
    if number is None or number.account != principal.account:
        raise ProblemError(
            "invalid-field",
            f"from: {body.from_} is not one of this account's numbers (GET /v1/numbers lists them)",
            field="from",
        )
    originator = app.get(ORIGINATOR)
    runtime = cast(FlowStarter | None, app.get(FLOWS))
    if originator is None or runtime is None:
        raise ProblemError(
            "originator-unavailable",
            "this node cannot place calls (no SIP worker pool, trunk or flow runtime)",
            headers={"Retry-After": "30"},
        )
    step: dict[str, Any] = {"room": name, "moderator": body.moderator, "muted": body.muted}
    callback = str(body.status_callback) if body.status_callback else None
    if callback:
        step["status_callback"] = callback
    text = json.dumps(
        {"flow": "conference-dial-in", "start": "room", "steps": {"room": {"conference": step}}},
        indent=2,
    )
    cfg = app[CONFIG]
    document = await checked_flow(
        text, "conference", cfg.path(cfg.paths.prompts), "room", "the dial-in flow"
    )
    registry = app[CALLS]
    call = registry.create(
        account=principal.account,
        direction="outbound",
        from_number=body.from_,
        to_number=body.to,
        flow=document.name,
        status_callback=callback,
    )
    app[DIALER].place(
        call, originator, runtime, ring_timeout=float(body.ring_timeout), variables={},
        flow=document,
    )  # fmt: skip
    doc = CallResource.model_validate(registry.resource(call)).model_dump(by_alias=True)
    response = web.json_response(doc, status=201)
    response.headers["Location"] = f"/v1/calls/{call.id}"
    return response


@resource.op(
    "POST",
    "/conferences/{room}/participants/{call_id}",
    summary="Mute, unmute or remove a participant",
    roles=CONTROL,
    body=ParticipantUpdate,
    response=ConferenceDoc,
    errors=(400, 401, 403, 404, 422, 429),
)
async def update_participant(request: web.Request) -> web.Response:
    """`kick` takes the participant out of the room (its flow goes on with the step's
    `then`, or the call ends)."""
    room = _room(request)
    body = request_body(request, ParticipantUpdate)
    call_id = request.match_info["call_id"]
    service = _service(request)
    try:
        if body.action == "kick":
            service.kick(room.account, room.name, call_id)
        else:
            await service.mute(room.account, room.name, call_id, body.action == "mute")
    except KeyError:
        raise ProblemError(
            "not-found", f"call {call_id} is not in room '{room.name}'", field="call_id"
        ) from None
    return answer(ConferenceDoc, room.resource())

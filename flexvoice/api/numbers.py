"""/v1/numbers: the account's geographic numbers, what each runs, and its Voice Continuity."""

from __future__ import annotations

from aiohttp import web

from flexvoice.api.framework import PRINCIPAL, Resource, request_body
from flexvoice.api.models import ContinuityPut, NumberList, NumberPut, NumberResource
from flexvoice.api.problems import ProblemError
from flexvoice.appkeys import NUMBERS
from flexvoice.numbers import Number, NumberError, parse_e164

resource = Resource("numbers", "Geographic numbers, their flows and Voice Continuity")

READ = frozenset({"developer"})
WRITE: frozenset[str] = frozenset()  # admin only (admin is added to every operation)


def _problem(exc: NumberError) -> ProblemError:
    slug = {
        "invalid-number": "invalid-number",
        "invalid-field": "invalid-field",
        "not-found": "not-found",
        "conflict": "conflict",
        "not-available": "number-not-available",
        "managed-by-file": "managed-by-file",
        "unknown-account": "invalid-field",
    }.get(exc.code, "invalid-field")
    # The registry calls it "number"; in this API it is the path parameter e164.
    field = "e164" if exc.field == "number" else exc.field
    return ProblemError(slug, str(exc), field=field)


def _e164(request: web.Request, *, geographic: bool = False) -> str:
    text = request.match_info["e164"]
    try:
        return parse_e164(text, geographic=geographic, field="e164")
    except NumberError as exc:
        raise _problem(exc) from None


def _own(request: web.Request) -> Number:
    e164 = _e164(request)
    number = request.config_dict[NUMBERS].lookup(e164)
    if number is None or number.account != request[PRINCIPAL].account:
        raise ProblemError("not-found", f"no number {e164} in this account", field="e164")
    return number


def _json(number: Number, status: int = 200) -> web.Response:
    doc = NumberResource.model_validate(number.as_dict())
    return web.json_response(doc.model_dump(), status=status)


@resource.op(
    "GET",
    "/numbers",
    summary="List the account's numbers",
    roles=READ,
    response=NumberList,
    errors=(401, 403, 429),
)
async def list_numbers(request: web.Request) -> web.Response:
    numbers = request.config_dict[NUMBERS].list(request[PRINCIPAL].account)
    doc = NumberList.model_validate({"numbers": [n.as_dict() for n in numbers]})
    return web.json_response(doc.model_dump())


@resource.op(
    "GET",
    "/numbers/{e164}",
    summary="Read a number",
    roles=READ,
    response=NumberResource,
    errors=(401, 403, 404, 422, 429),
)
async def get_number(request: web.Request) -> web.Response:
    return _json(_own(request))


@resource.op(
    "PUT",
    "/numbers/{e164}",
    summary="Add a number or change what it runs",
    roles=WRITE,
    body=NumberPut,
    response=NumberResource,
    errors=(400, 401, 403, 409, 413, 422, 429),
)
async def put_number(request: web.Request) -> web.Response:
    """Adding a number starts its monthly `number` charge (201); changing its flow does not
    (200). Numbers listed in sip/numbers.yaml are the operator's: 409 managed-by-file."""
    e164 = _e164(request, geographic=True)
    body = request_body(request, NumberPut)
    try:
        number, created = request.config_dict[NUMBERS].put(
            e164, request[PRINCIPAL].account, body.flow, prompt=body.prompt
        )
    except NumberError as exc:
        raise _problem(exc) from None
    return _json(number, 201 if created else 200)


@resource.op(
    "DELETE",
    "/numbers/{e164}",
    summary="Remove a number",
    roles=WRITE,
    errors=(401, 403, 404, 409, 422, 429),
    status=204,
)
async def delete_number(request: web.Request) -> web.Response:
    """Ends the number's monthly charge (the month it was active in is still charged)."""
    number = _own(request)
    try:
        request.config_dict[NUMBERS].delete(number.e164, request[PRINCIPAL].account)
    except NumberError as exc:
        raise _problem(exc) from None
    return web.Response(status=204)


@resource.op(
    "PUT",
    "/numbers/{e164}/continuity",
    summary="Switch Voice Continuity",
    roles=WRITE,
    body=ContinuityPut,
    response=NumberResource,
    errors=(400, 401, 403, 404, 413, 422, 429),
)
async def put_continuity(request: web.Request) -> web.Response:
    """With `active: true` the next call to the number goes straight to `forward_to`, without
    touching its flow; `active: false` restores the flow."""
    number = _own(request)
    body = request_body(request, ContinuityPut)
    try:
        updated = request.config_dict[NUMBERS].set_continuity(
            number.e164, body.forward_to, body.active, request[PRINCIPAL].account
        )
    except NumberError as exc:
        raise _problem(exc) from None
    return _json(updated)

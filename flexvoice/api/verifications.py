"""/v1/verifications: one-time codes by SMS or voice, checked here (Twilio Verify's shape)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from flexvoice.api.framework import (
    Resource,
    request_body,
    retry_after_seconds,
)
from flexvoice.api.messages import refused
from flexvoice.api.models import (
    VerificationCheck,
    VerificationCreate,
    VerificationResource,
    VerificationUpdate,
)
from flexvoice.api.problems import ProblemError
from flexvoice.api.resources import account_of, answer, node_part
from flexvoice.appkeys import VERIFIER
from flexvoice.messaging.service import MessageRefused
from flexvoice.verify.core import Refused
from flexvoice.verify.service import NotFound, SendLimited, Verifier
from flexvoice.verify.store import VerificationRow

resource = Resource("verifications", "Two-factor verification codes by SMS or voice")

USE = frozenset({"developer"})


def _verifier(request: web.Request) -> Verifier:
    return node_part(request, VERIFIER, "verification is not running on this node", retry_after=30)


def _json(request: web.Request, row: VerificationRow, status: int = 200) -> web.Response:
    response = answer(VerificationResource, _verifier(request).resource(row), status)
    if status == 201:
        response.headers["Location"] = f"/v1/verifications/{row.id}"
    return response


async def _on_path(
    request: web.Request, action: Callable[[Verifier, str, str], Awaitable[VerificationRow]]
) -> web.Response:
    """`action(verifier, account, id)` on the verification the path names, answered as the
    resource; 404 on that parameter when there is nothing (left) to act on."""
    vid = request.match_info["verification_id"]
    try:
        row = await action(_verifier(request), account_of(request), vid)
    except NotFound:
        raise ProblemError(
            "not-found",
            f"no pending verification '{vid}' in this account (it may have been "
            "approved, canceled, expired or used up its checks: start a new one)",
            field="verification_id",
        ) from None
    return _json(request, row)


@resource.op(
    "POST",
    "/verifications",
    summary="Send a verification code",
    roles=USE,
    body=VerificationCreate,
    response=VerificationResource,
    status=201,
    idempotent=True,
    errors=(400, 401, 403, 409, 413, 422, 429, 503),
)
async def create_verification(request: web.Request) -> web.Response:
    """Sends a random code by SMS, or calls and speaks it twice. Asking again for the same
    number within the validity (10 minutes) resends the same code. At most 5 sends per number
    per 10 minutes (429 with Retry-After); only to the account's allowed countries, never to
    premium-rate numbers."""
    body = request_body(request, VerificationCreate)
    verifier = _verifier(request)
    try:
        row = await verifier.start(
            account_of(request), body.to, body.channel, body.code_length, body.locale
        )
    except Refused as exc:
        raise ProblemError("destination-refused", str(exc), field="to") from None
    except SendLimited as exc:
        raise ProblemError(
            "send-rate-limited",
            str(exc),
            field="to",
            headers={"Retry-After": retry_after_seconds(exc.retry_after)},
        ) from None
    except MessageRefused as exc:
        raise refused(exc) from None
    return _json(request, row, 201)


@resource.op(
    "GET",
    "/verifications/{verification_id}",
    summary="Read a verification",
    roles=USE,
    response=VerificationResource,
    errors=(401, 403, 404, 429),
)
async def get_verification(request: web.Request) -> web.Response:
    """Its status, sends and checks left; never the code."""
    return await _on_path(request, Verifier.get)


@resource.op(
    "POST",
    "/verifications/{verification_id}/check",
    summary="Check a code",
    roles=USE,
    body=VerificationCheck,
    response=VerificationResource,
    errors=(400, 401, 403, 404, 422, 429),
)
async def check_verification(request: web.Request) -> web.Response:
    """`approved` for the right code; `pending` for a wrong one while checks are left;
    `max_attempts_reached` at the fifth wrong code. Then, and once approved, expired or
    canceled, checks answer 404."""
    code = request_body(request, VerificationCheck).code
    return await _on_path(
        request, lambda verifier, account, vid: verifier.check(account, vid, code)
    )


@resource.op(
    "POST",
    "/verifications/{verification_id}",
    summary="Cancel a verification",
    roles=USE,
    body=VerificationUpdate,
    response=VerificationResource,
    errors=(400, 401, 403, 404, 422, 429),
)
async def update_verification(request: web.Request) -> web.Response:
    """`{"status": "canceled"}`: the code stops working at once."""
    request_body(request, VerificationUpdate)
    return await _on_path(request, Verifier.cancel)

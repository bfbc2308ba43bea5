"""Errors as RFC 9457 problem documents (`application/problem+json`).

Every error the API answers has a stable `type` (`urn:flexvoice:problem:<slug>`, listed in
PROBLEM_TYPES and on /docs) that clients can switch on, a `title` that goes with the type, a
`detail` that says what to fix, and `field` naming the request field at fault when there is one
(`errors` lists each one when several are wrong at once).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:flexvoice:problem:"

# slug -> (HTTP status, title). Slugs are part of the API contract: never rename one.
PROBLEM_TYPES: dict[str, tuple[int, str]] = {
    "malformed-json": (400, "The body is not valid JSON"),
    "invalid-body": (400, "The body must be a JSON object"),
    "unsupported-media-type": (415, "The body's Content-Type is not accepted here"),
    "unknown-field": (422, "A field is not part of this request"),
    "missing-field": (422, "A required field is missing"),
    "invalid-field": (422, "A field has a value that is not allowed"),
    "invalid-number": (422, "A phone number is not valid"),
    "invalid-flow": (422, "The flow is not valid"),
    "unknown-flow": (422, "No flow has this name"),
    "caller-id-not-allowed": (422, "The trunk does not allow this caller ID"),
    "unknown-query-parameter": (400, "A query parameter is not part of this request"),
    "invalid-query-parameter": (400, "A query parameter has a value that is not allowed"),
    "unauthenticated": (401, "An API key is needed"),
    "invalid-key": (401, "The API key is not valid"),
    "forbidden": (403, "The key's role may not do this"),
    "account-suspended": (403, "The account is suspended"),
    "not-found": (404, "No such resource in this account"),
    "method-not-allowed": (405, "This method is not allowed here"),
    "conflict": (409, "The request conflicts with the resource's state"),
    "idempotency-key-reused": (409, "The Idempotency-Key was used with another request"),
    "idempotency-key-in-progress": (409, "A request with this Idempotency-Key is still running"),
    "number-not-available": (409, "The number cannot be added to this account"),
    "managed-by-file": (409, "The number is managed in sip/numbers.yaml"),
    "precondition-failed": (412, "The resource changed since it was read (If-Match)"),
    "body-too-large": (413, "The body is larger than 1 MiB"),
    "audio-too-large": (413, "The recording is larger than the upload limit"),
    "invalid-audio": (422, "The recording is not audio the node can play"),
    "malformed-request": (400, "The request is not valid HTTP"),
    "uri-too-long": (414, "The URL is too long"),
    "headers-too-large": (431, "The headers are too large"),
    "too-many-failed-authentications": (429, "Too many failed authentications from here"),
    "rate-limited": (429, "Too many calls per second for this account"),
    "recipient-opted-out": (422, "The recipient sent STOP to this sender"),
    "destination-refused": (422, "Verification codes may not go to this destination"),
    "send-rate-limited": (429, "Too many codes sent to this destination for now"),
    "originator-unavailable": (503, "Outbound calling is not available on this node"),
    "owner-node-unavailable": (503, "The node holding this call is not answering"),
    "service-unavailable": (503, "A part of the node this needs is not running"),
    "internal-error": (500, "Internal error"),
}


class ProblemError(Exception):
    """Raise anywhere in a handler; the API's middleware answers with the problem document."""

    def __init__(
        self,
        slug: str,
        detail: str,
        *,
        field: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(detail)
        if slug not in PROBLEM_TYPES:
            raise ValueError(f"unknown problem type {slug}")
        self.slug = slug
        self.status = status or PROBLEM_TYPES[slug][0]
        self.detail = detail
        self.field = field
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra or {}

    def document(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": TYPE_PREFIX + self.slug,
            "title": PROBLEM_TYPES[self.slug][1],
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            doc["instance"] = instance
        if self.field is not None:
            doc["field"] = self.field
        if self.errors:
            doc["errors"] = self.errors
        doc.update(self.extra)
        return doc

    def response(self, instance: str | None = None) -> web.Response:
        return web.Response(
            status=self.status,
            text=json.dumps(self.document(instance), ensure_ascii=False),
            content_type=PROBLEM_CONTENT_TYPE,
            headers=self.headers,
        )


def dotted(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


def _describe(err: Any) -> tuple[str, str]:
    """(slug, human detail) for one pydantic error."""
    kind = err["type"]
    field = dotted(tuple(err["loc"]))
    if kind == "extra_forbidden":
        return "unknown-field", f"{field}: not a field of this request; remove it"
    if kind == "missing":
        return "missing-field", f"{field}: required"
    msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    slug = "invalid-number" if msg.startswith("invalid-number:") else "invalid-field"
    msg = msg.removeprefix("invalid-number:").strip()
    return slug, f"{field}: {msg}"


def from_validation_error(exc: ValidationError, *, query: bool = False) -> ProblemError:
    """One problem for the whole request; the first error sets `type` and `field`, and
    `errors` lists them all."""
    errors = []
    for err in exc.errors(include_url=False):
        slug, detail = _describe(err)
        if query:
            slug = (
                "unknown-query-parameter" if slug == "unknown-field" else "invalid-query-parameter"
            )
        errors.append(
            {"type": TYPE_PREFIX + slug, "field": dotted(tuple(err["loc"])), "detail": detail}
        )
    first = errors[0]
    more = f" (and {len(errors) - 1} more problem(s), see errors)" if len(errors) > 1 else ""
    return ProblemError(
        str(first["type"]).removeprefix(TYPE_PREFIX),
        f"{first['detail']}{more}",
        field=str(first["field"]) or None,
        errors=errors,
    )

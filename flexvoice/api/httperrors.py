"""Requests aiohttp refuses before any handler runs (a request line or header over 8 KiB, too
many headers, bytes that are not HTTP) answered as problem documents like every other error,
instead of aiohttp's plain text, and logged as one line instead of a traceback.

aiohttp builds those answers in `RequestHandler.handle_error`; the node's HTTP server makes its
connection handlers from `ProblemServer`, whose handlers override it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler

from flexvoice.api.problems import ProblemError
from flexvoice.logs import get_logger

log = get_logger(__name__)

MAX_LINE_BYTES = 8190  # aiohttp's limits for the request line and each header line
MAX_HEADERS = 128


def problem_for(status: int, exc: BaseException | None) -> ProblemError:
    if isinstance(exc, LineTooLong):
        line = exc.args[0] if exc.args else b""
        start = line[:1] if isinstance(line, bytes | bytearray | str) else b""
        if start in (b"/", "/"):
            return ProblemError(
                "uri-too-long",
                f"the URL is longer than {MAX_LINE_BYTES} bytes; send a shorter one",
            )
        return ProblemError(
            "headers-too-large",
            f"a header is longer than {MAX_LINE_BYTES} bytes; send shorter headers (an "
            "Idempotency-Key is at most 255 characters, a UUID is a good choice)",
        )
    if isinstance(exc, BadHttpMessage) and "too many headers" in str(exc).lower():
        return ProblemError(
            "headers-too-large", f"more than {MAX_HEADERS} headers; send fewer headers"
        )
    if status >= 500:
        return ProblemError(
            "internal-error", "the server failed to handle this request; it has been logged"
        )
    return ProblemError(
        "malformed-request",
        "the request is not valid HTTP/1.1 (request line, headers or body framing); "
        "check the client",
        status=status if status in (400, 413, 414, 431) else 400,
    )


class ProblemRequestHandler(RequestHandler):
    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # an answer is already under way: aiohttp's way
            return super().handle_error(request, status, exc, message)
        problem = problem_for(status, exc)
        if problem.status >= 500:
            log.error("http.request_failed", status=problem.status, error=repr(exc)[:200])
        else:
            log.info("http.request_refused", status=problem.status, type=problem.slug)
        response = problem.response()
        response.force_close()
        return response


class ProblemServer(web.Server):
    def __call__(self) -> RequestHandler:
        return ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


def answer_with_problems(runner: web.BaseRunner) -> None:
    """Make the (set-up) runner's server answer refused requests with problem documents."""
    server = runner.server
    assert server is not None and type(server) is web.Server
    server.__class__ = ProblemServer

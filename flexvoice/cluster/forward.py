"""A request for a call another node holds, sent on to that node's API over HTTP.

Why HTTP to the owner's own API rather than a Redis pub/sub command channel: the owner
answers with the very response its API gives (the call as it now stands, or a 409/404
problem), within a time limit, and the caller learns at once when the owner is gone; a
pub/sub message has no answer and is lost when nobody listens. The request carries the
caller's own API key (keys live in the shared PostgreSQL store), so the owner authenticates
and authorises it exactly as if it had been sent there: no node secret exists that would open
every account's calls if it leaked. The `X-FlexVoice-Forwarded-By` header stops a second hop
(two nodes that each think the other holds a call cannot bounce a request forever).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

FORWARDED_BY = "X-FlexVoice-Forwarded-By"
TIMEOUT = 5.0
# Hop-by-hop headers and those the owner must not see twice: the idempotency key was
# recorded by the node the client called (its answer is kept there).
_DROP = {
    "host", "content-length", "connection", "keep-alive", "transfer-encoding", "upgrade",
    "idempotency-key", FORWARDED_BY.lower(),
}  # fmt: skip


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str


class OwnerGone(Exception):
    """The owning node did not answer (stopped, killed, unreachable)."""


async def forward(
    session: aiohttp.ClientSession,
    base_url: str,
    method: str,
    path_qs: str,
    headers: Mapping[str, str],
    body: bytes,
    by: str,
    timeout: float = TIMEOUT,
) -> Answer:
    sent = {k: v for k, v in headers.items() if k.lower() not in _DROP}
    sent[FORWARDED_BY] = by
    try:
        async with session.request(
            method,
            base_url.rstrip("/") + path_qs,
            headers=sent,
            data=body or None,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as resp:
            return Answer(resp.status, await resp.read(), resp.headers.get("Content-Type", ""))
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise OwnerGone(str(exc) or type(exc).__name__) from None

"""/v1/calls across the cluster: a request about a call another node holds goes to that node
(flexvoice.cluster.forward says why over HTTP), and a call list takes in the live nodes' calls
while each node keeps its own calls table."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from flexvoice.api.problems import ProblemError
from flexvoice.appkeys import CALLS, CLUSTER
from flexvoice.cluster.forward import FORWARDED_BY, OwnerGone, forward
from flexvoice.cluster.member import Member
from flexvoice.logs import get_logger
from flexvoice.storage.engine import is_postgres

log = get_logger(__name__)

MISSING_HEADER = "FlexVoice-Nodes-Missing"


def _member(request: web.Request) -> Member | None:
    member = request.config_dict.get(CLUSTER)
    if member is None or request.headers.get(FORWARDED_BY):
        return None  # one node, or already sent on by another node: answer from here
    return member


async def to_owner(request: web.Request, call_id: str) -> web.Response | None:
    """The owning node's answer when another node holds `call_id`; None when no other node
    does (the caller answers from here). 503 owner-node-unavailable when the owner is gone."""
    member = _member(request)
    if member is None:
        return None
    found = await member.state.owner(call_id)
    if found is None or found[0] == member.node:
        return None
    node, url = found

    def gone(why: str) -> ProblemError:
        return ProblemError(
            "owner-node-unavailable",
            f"call {call_id} is held by node '{node}', which {why}; if that node is lost, its "
            "calls end as node_lost within seconds, billed to its last heartbeat: read the "
            "call again shortly",
            field="call_id",
            headers={"Retry-After": "5"},
        )

    if not url:
        raise gone("has stopped beating")
    assert member.session is not None
    try:
        answer = await forward(
            member.session,
            url,
            request.method,
            request.path_qs,
            request.headers,
            await request.read(),
            member.node,
        )
    except OwnerGone as exc:
        log.warning("cluster.owner_gone", call_id=call_id, node=node, error=str(exc))
        raise gone("does not answer") from None
    response = web.Response(status=answer.status, body=answer.body)
    response.headers["Content-Type"] = answer.content_type or "application/json"
    response.headers[FORWARDED_BY] = node  # who answered, for an operator reading logs
    return response


def calls_shared(request: web.Request) -> bool:
    return is_postgres(request.config_dict[CALLS].conn)


async def other_nodes_calls(request: web.Request) -> tuple[list[dict[str, Any]], list[str]]:
    """The same call list asked of every other serving node (when calls are not in a shared
    store): their calls, and the nodes that did not answer."""
    member = _member(request)
    if member is None or calls_shared(request):
        return [], []
    others = [n for n in member.nodes if n.name != member.node and n.serving and n.url]
    assert member.session is not None
    session = member.session

    async def ask(url: str) -> list[dict[str, Any]]:
        answer = await forward(
            session, url, "GET", request.path_qs, request.headers, b"", member.node
        )
        if answer.status != 200:
            raise OwnerGone(f"HTTP {answer.status}")
        calls: list[dict[str, Any]] = json.loads(answer.body)["calls"]
        return calls

    results = await asyncio.gather(*(ask(n.url) for n in others), return_exceptions=True)
    found: list[dict[str, Any]] = []
    missing = []
    for node, result in zip(others, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("cluster.list_node_missing", node=node.name, error=str(result))
            missing.append(node.name)
        else:
            found.extend(result)
    return found, missing


def merged(
    own: list[dict[str, Any]], others: list[dict[str, Any]], limit: int
) -> list[dict[str, Any]]:
    """Newest first (as one node lists), each call once, at most `limit`."""
    seen: dict[str, dict[str, Any]] = {}
    for call in [*own, *others]:
        seen.setdefault(str(call["id"]), call)
    ordered = sorted(seen.values(), key=lambda c: str(c["id"]))
    ordered.sort(key=lambda c: str(c["created_at"]), reverse=True)
    return ordered[:limit]

"""/v1/calls across the cluster: a request about a call another node holds goes to that node
(flexvoice.cluster.forward says why over HTTP), and a call list takes in the live nodes' calls
while each node keeps its own calls table."""

from __future__ import annotations

from aiohttp import web

from flexvoice.api.problems import ProblemError
from flexvoice.appkeys import CLUSTER
from flexvoice.cluster.forward import FORWARDED_BY, OwnerGone, forward
from flexvoice.cluster.member import Member
from flexvoice.logs import get_logger

log = get_logger(__name__)


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

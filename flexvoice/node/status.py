"""What the node was asked to run (ServeOptions) and what /healthz and /metrics report."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from flexvoice import __version__
from flexvoice.appkeys import SHARED_DB, STATUS
from flexvoice.storage.engine import is_postgres, reachable


@dataclass
class ServeOptions:
    edge: bool = True  # False: `--no-edge`, one worker directly on the public SIP port


@dataclass
class NodeStatus:
    """What /healthz reports; the SIP components keep it current."""

    workers_up: int = 0
    workers_total: int = 0
    edge_enabled: bool = False
    edge_up: bool = False
    draining: bool = False
    shared_state_ok: bool = True  # in a cluster: Redis (which node holds what) answers
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        edge_ok = self.edge_up or not self.edge_enabled
        workers_ok = self.workers_up == self.workers_total
        return edge_ok and workers_ok and self.shared_state_ok and not self.draining


health_routes = web.RouteTableDef()


@health_routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    status = request.app[STATUS]
    healthy = status.healthy
    storage: dict[str, object] = {}
    shared = request.app.get(SHARED_DB)
    if shared is not None:
        # Accounts, keys and numbers live there: without it no call is routed, no key checked.
        ok = reachable(shared)
        storage = {"storage": {"shared": "postgresql" if is_postgres(shared) else "sqlite",
                               "reachable": ok}}  # fmt: skip
        healthy = healthy and ok
    body = {
        "status": "ok" if healthy else ("draining" if status.draining else "degraded"),
        "version": __version__,
        "workers": {"up": status.workers_up, "total": status.workers_total},
        "edge": {"enabled": status.edge_enabled, "up": status.edge_up},
        **storage,
        **status.extra,
    }
    return web.json_response(body, status=200 if healthy else 503)


@health_routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    resp = web.Response(body=generate_latest(REGISTRY))
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp

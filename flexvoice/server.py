"""`flexvoice serve`: one engine node (HTTP API, SIP edge and workers, flows, metering).

The node is an aiohttp application; each part (worker pool, edge, flow runtime, storage) is a
`cleanup_ctx` component, so start-up happens in order and shutdown in reverse order, on
SIGINT/SIGTERM as well as on errors during start-up (nothing half-starts).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from flexvoice import __version__
from flexvoice.config import Config
from flexvoice.logs import get_logger, setup_logging
from flexvoice.system import port_in_use_error, require_binary

log = get_logger(__name__)

MAX_BODY_BYTES = 1024 * 1024


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
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        edge_ok = self.edge_up or not self.edge_enabled
        return edge_ok and self.workers_up == self.workers_total and not self.draining


CONFIG = web.AppKey("config", Config)
OPTIONS = web.AppKey("options", ServeOptions)
STATUS = web.AppKey("status", NodeStatus)

Component = Callable[[web.Application], AsyncIterator[None]]

# Parts of the node, started in this order and stopped in reverse: "module:function" names of
# cleanup_ctx generators, imported when the node is built (the modules import this one).
COMPONENTS: list[str] = [
    "flexvoice.metering.sink:usage_component",  # first: everything after it records usage
    "flexvoice.sip.node:numbers_component",
    "flexvoice.flows.node:flows_component",
    # The API's call registry observes calls: it must outlive the pool's drain.
    "flexvoice.api.app:api_component",
    "flexvoice.messaging.node:messaging_component",  # after the API: it takes its webhooks
    "flexvoice.verify.node:verify_component",
    "flexvoice.sip.edge_node:edge_component",  # before the pool: it stops after the drain
    "flexvoice.sip.node:sip_component",
]


def load_component(name: str) -> Component:
    import importlib

    module, _, func = name.partition(":")
    component: Component = getattr(importlib.import_module(module), func)
    return component


health_routes = web.RouteTableDef()


@health_routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    status = request.app[STATUS]
    body = {
        "status": "ok" if status.healthy else ("draining" if status.draining else "degraded"),
        "version": __version__,
        "workers": {"up": status.workers_up, "total": status.workers_total},
        "edge": {"enabled": status.edge_enabled, "up": status.edge_up},
        **status.extra,
    }
    return web.json_response(body, status=200 if status.healthy else 503)


@health_routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    resp = web.Response(body=generate_latest(REGISTRY))
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


def bind_tcp(host: str, port: int, setting: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise port_in_use_error(host, port, setting, exc) from None
    sock.setblocking(False)
    return sock


def build_app(cfg: Config, options: ServeOptions) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[CONFIG] = cfg
    app[OPTIONS] = options
    app[STATUS] = NodeStatus(edge_enabled=options.edge and cfg.sip.edge.enabled)
    app.add_routes(health_routes)
    for name in COMPONENTS:
        app.cleanup_ctx.append(load_component(name))
    return app


async def run_node(cfg: Config, options: ServeOptions, ready: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM; raise UserError when the node cannot start."""
    app = build_app(cfg, options)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Bind the HTTP port before any component starts, so a port clash stops us early.
    sock = bind_tcp(cfg.http.host, cfg.http.port, "http.port")
    try:
        await runner.setup()
        await web.SockSite(runner, sock).start()
        log.info(
            "node.started", http=f"http://{cfg.http.host}:{cfg.http.port}", version=__version__
        )
        if ready:
            ready.set()
        await stop.wait()
        log.info("node.stopping")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        log.info("node.stopped")


def preflight(cfg: Config, options: ServeOptions) -> None:
    """Check what the node needs from the machine before anything starts."""
    if options.edge and cfg.sip.edge.enabled:
        require_binary(cfg.sip.edge.kamailio, "kamailio", "the SIP edge", "sip.edge.kamailio")


def _serve(args: argparse.Namespace) -> int:
    from flexvoice.cli import config_from_args

    cfg = config_from_args(args)
    setup_logging(cfg.logging.level, cfg.logging.format)
    options = ServeOptions(edge=not args.no_edge)
    preflight(cfg, options)
    asyncio.run(run_node(cfg, options))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="run an engine node (HTTP API, SIP edge, media workers)")
    p.add_argument(
        "--no-edge",
        action="store_true",
        help="development: no Kamailio; one worker listens on the edge port itself (4 calls)",
    )
    p.set_defaults(handler=_serve)

"""The node, read top to bottom: the aiohttp application and its components in start-up order.

Each component is an aiohttp cleanup_ctx generator: they start in the order of the list and
stop in reverse, on SIGINT/SIGTERM as well as on an error during start-up (nothing
half-starts). A component reads what earlier ones published (flexvoice.appkeys) and fails with
a message naming the missing component. Tests build a node from the components they need:
`build_app(cfg, components=[database_component, tariffs_component, ...])`.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
from collections.abc import AsyncIterator, Callable, Sequence

from aiohttp import web

from flexvoice import __version__
from flexvoice.api.framework import MAX_BODY_BYTES
from flexvoice.api.httperrors import answer_with_problems
from flexvoice.appkeys import CONFIG, OPTIONS, STATUS
from flexvoice.config import Config
from flexvoice.logs import get_logger
from flexvoice.looplag import loop_lag_component
from flexvoice.node.api import api_component, end_live_streams
from flexvoice.node.cluster import cluster_component
from flexvoice.node.edge import edge_component
from flexvoice.node.flows import flows_component
from flexvoice.node.heartbeat import heartbeat_component
from flexvoice.node.messaging import messaging_component, verify_component
from flexvoice.node.numbers import numbers_component
from flexvoice.node.pool import pool_component
from flexvoice.node.recordings import conferences_component, recordings_component
from flexvoice.node.shared import database_component, tariffs_component, trunks_component
from flexvoice.node.status import NodeStatus, ServeOptions, health_routes
from flexvoice.node.usage import usage_component
from flexvoice.system import port_in_use_error

log = get_logger(__name__)

Component = Callable[[web.Application], AsyncIterator[None]]

DEFAULT_COMPONENTS: tuple[Component, ...] = (
    database_component,  # the event loop's SQLite connection, closed last
    tariffs_component,
    trunks_component,
    usage_component,  # before everything that records usage
    numbers_component,  # before any call can arrive
    flows_component,
    # The API's call registry observes calls: it must outlive the pool's drain.
    api_component,
    recordings_component,  # after the API (webhooks, calls), before the pool: outlives the drain
    conferences_component,
    messaging_component,  # after the API (its webhook queue), before the pool (SIP MESSAGE)
    verify_component,
    edge_component,  # before the pool: it stops after the drain, so late BYEs still arrive
    heartbeat_component,  # closes what a killed node left open; notes the pool's live legs
    cluster_component,  # with cluster.enabled: live calls and workers in Redis, lost nodes
    pool_component,
)


def build_app(
    cfg: Config,
    components: Sequence[Component] = DEFAULT_COMPONENTS,
    options: ServeOptions | None = None,
) -> web.Application:
    options = options or ServeOptions()
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[CONFIG] = cfg
    app[OPTIONS] = options
    app[STATUS] = NodeStatus(edge_enabled=options.edge and cfg.sip.edge.enabled)
    app.add_routes(health_routes)
    app.on_shutdown.append(end_live_streams)
    app.cleanup_ctx.append(loop_lag_component)  # first in, last out: watches every stage
    for component in components:
        app.cleanup_ctx.append(component)
    return app


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


async def run_node(cfg: Config, options: ServeOptions, ready: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM; raise UserError when the node cannot start."""
    app = build_app(cfg, options=options)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        # systemd and `timeout` signal the whole group, Ctrl-C too, sometimes twice: one
        # stop, and the handlers stay until it is complete (a signal arriving during the
        # drain with Python's default handler would kill the node half-way, leaving the edge
        # running, or raise KeyboardInterrupt inside a task).
        if stop.is_set():
            log.info("node.signal_ignored", signal=sig.name, why="already stopping")
            return
        log.info("node.signal", signal=sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    # Bind the HTTP port before any component starts, so a port clash stops us early.
    sock = bind_tcp(cfg.http.host, cfg.http.port, "http.port")
    try:
        await runner.setup()
        answer_with_problems(runner)
        await web.SockSite(runner, sock).start()
        # What start-up made (modules, configuration, the pool: ~100k objects) lives as long
        # as the node. Frozen, the collector no longer walks it at each full collection,
        # which stalled the event loop for 0.1-0.7 s in the middle of calls (measured at
        # 100 CPS on the loaded 2-core machine); a collection now walks what calls made.
        gc.collect()
        gc.freeze()
        log.info(
            "node.started", http=f"http://{cfg.http.host}:{cfg.http.port}", version=__version__
        )
        if ready:
            ready.set()
        await stop.wait()
        log.info("node.stopping")
    finally:
        stop.set()  # from here on, a signal is "already stopping"
        try:
            await runner.cleanup()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        log.info("node.stopped")

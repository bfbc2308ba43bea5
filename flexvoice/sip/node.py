"""The SIP part of `flexvoice serve`: the worker pool as a node component, and what happens
to an incoming call (number lookup, 404/403, Voice Continuity, the number's flow or prompt).

Pure routing lives in `route_inbound`, which takes the lookups as arguments, so it is tested
without SIP; the component wires it to the pool and to the other parts of the node (number
registry, flow runtime, usage sink) that are present in the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from flexvoice.callcontrol import CallEnded, CallLeg, CallObserver
from flexvoice.config import Config
from flexvoice.flows.node import FLOW_RUNTIME
from flexvoice.flows.validate import prompt_file
from flexvoice.logs import bind_call, get_logger
from flexvoice.messaging.node import MESSAGE_TRANSPORT, sip_inbound
from flexvoice.metering.sink import USAGE_SINK
from flexvoice.server import CONFIG, OPTIONS, STATUS
from flexvoice.sip.addresses import edge_proxy_uri
from flexvoice.sip.edge_node import EDGE
from flexvoice.sip.leg import SipLeg
from flexvoice.sip.messages import SipMessenger
from flexvoice.sip.originate import PoolOriginator
from flexvoice.sip.pool import PoolSettings, WorkerPool
from flexvoice.sip.trunks import Trunk, load_trunks
from flexvoice.sip.usage import call_usage

log = get_logger(__name__)


class NumberRoute(Protocol):
    """What the number registry knows about one geographic number."""

    @property
    def account(self) -> str: ...

    @property
    def flow(self) -> str | None: ...

    @property
    def prompt(self) -> str | None: ...

    @property
    def suspended(self) -> bool: ...


class NumberLookup(Protocol):
    def lookup(self, e164: str) -> NumberRoute | None: ...

    def continuity_for(self, e164: str) -> tuple[str, bool] | None: ...


class FlowStarter(Protocol):
    def start_call(
        self,
        leg: CallLeg,
        flow_name: str,
        *,
        account: str | None,
        observer: CallObserver | None = None,
    ) -> Awaitable[Any]: ...


@dataclass
class InboundDeps:
    numbers: NumberLookup | None
    flows: FlowStarter | None
    # Called once a number is found, before anything else happens to the call: the API's
    # call registry records inbound calls (GET /v1/calls) and observes them from then on.
    prompts_dir: Path
    observe: Callable[[CallLeg, NumberRoute], CallObserver | None] | None = None


async def route_inbound(leg: CallLeg, deps: InboundDeps) -> str:
    """Decide and carry out what an incoming call gets; returns what was done (for logs)."""
    route = deps.numbers.lookup(leg.callee) if deps.numbers is not None else None
    if route is None:
        await leg.hangup(404, "Not Found")
        return "not_found"
    if isinstance(leg, SipLeg):
        leg.account = route.account
    if route.suspended:
        await leg.hangup(403, "Forbidden")
        return "account_suspended"
    observer = deps.observe(leg, route) if deps.observe is not None else None
    if route.flow and deps.flows is not None:
        # The flow runtime applies the number's Voice Continuity switch itself (and bills
        # the reroute on the VMS tariff).
        await deps.flows.start_call(leg, route.flow, account=route.account, observer=observer)
        return "flow"
    continuity = deps.numbers.continuity_for(leg.callee) if deps.numbers is not None else None
    if continuity is not None and continuity[1]:
        # Voice Continuity: the network reroutes; no media through the engine.
        await leg.redirect(continuity[0])
        return "continuity"
    if route.prompt:
        await leg.answer()
        await leg.play([prompt_path(deps.prompts_dir, route.prompt)])
        await leg.hangup()
        return "prompt"
    log.error("call.no_route", number=leg.callee, flow=route.flow, why="flow runtime not running")
    await leg.hangup(480, "Temporarily Unavailable")
    return "unavailable"


def prompt_path(prompts_dir: Path, name: str) -> Path:
    """A prompt number's file (numbers name no language): the first of en, nl, fr that has
    it, else the language-neutral ivr_prompts/<name>.wav (the flows' own lookup)."""
    for language in ("en", "nl", "fr"):
        found = prompt_file(prompts_dir, name, language)
        if found is not None:
            return found
    return prompts_dir / f"{name}.wav"


def pool_settings(cfg: Config, edge: bool, trunk: Trunk | None) -> PoolSettings:
    w = cfg.sip.workers
    if not edge:
        # Development: one worker on the public SIP port, no Kamailio in front.
        return PoolSettings(
            count=1,
            host=cfg.sip.edge.host,
            base_port=cfg.sip.edge.port,
            max_calls=w.max_calls,
            restart_backoff=w.restart_backoff,
            rtp_base=w.rtp_base,
            **trunk_settings(trunk),
        )
    return PoolSettings(
        count=w.count,
        host=w.host,
        base_port=w.base_port,
        max_calls=w.max_calls,
        restart_backoff=w.restart_backoff,
        proxy=edge_proxy_uri(cfg),
        rtp_base=w.rtp_base,
        media_host=w.media_address,
        **trunk_settings(trunk),
    )


def trunk_settings(trunk: Trunk | None) -> dict[str, Any]:
    if trunk is None:
        return {}
    return {
        "trunk": trunk.uri.removeprefix("sip:"),
        "trunk_user": trunk.username,
        "trunk_password": trunk.password,
    }


def default_trunk(cfg: Config) -> Trunk | None:
    """The trunk calls to E.164 numbers go to (sip/trunks.yaml `default_outbound`)."""
    return load_trunks(cfg.path(cfg.sip.trunks)).default


FLOWS = FLOW_RUNTIME  # the API places calls into flows through the same runtime
POOL = web.AppKey("sip_pool", WorkerPool)
ORIGINATOR = web.AppKey("originator", PoolOriginator)
NUMBERS: web.AppKey[NumberLookup] = web.AppKey("numbers")


async def numbers_component(app: web.Application) -> AsyncIterator[None]:
    """The number registry, synced from sip/numbers.yaml before any call can arrive (a bad
    file stops start-up with file:line:col messages). The API uses the same registry."""
    from flexvoice.numbers import NumberRegistry
    from flexvoice.storage.sqlite import connect

    cfg = app[CONFIG]
    db_path = cfg.path(cfg.storage.database)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(db_path)
    registry = NumberRegistry(conn, usage_sink=app.get(USAGE_SINK))
    registry.sync_from_yaml(cfg.path(cfg.sip.numbers))
    app[NUMBERS] = registry
    try:
        yield
    finally:
        conn.close()


async def sip_component(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    edge = app[OPTIONS].edge and cfg.sip.edge.enabled
    status = app[STATUS]

    def observe_inbound(leg: CallLeg, route: NumberRoute) -> CallObserver | None:
        from flexvoice.api.appkeys import CALLS  # the API imports this module

        calls = app.get(CALLS)
        if calls is None:
            return None
        calls.create(
            account=route.account,
            direction="inbound",
            from_number=leg.caller,
            to_number=leg.callee,
            flow=route.flow,
            call_id=leg.call_id,
        )
        if isinstance(leg, SipLeg):
            leg.observer = calls
        return calls

    async def on_incoming(leg: SipLeg) -> None:
        bind_call(leg.call_id)
        deps = InboundDeps(
            numbers=app.get(NUMBERS),
            flows=app.get(FLOWS),
            prompts_dir=cfg.path(cfg.paths.prompts),
            observe=observe_inbound,
        )
        try:
            what = await route_inbound(leg, deps)
            log.info("call.routed", call_id=leg.call_id, number=leg.callee, route=what)
        except CallEnded:
            pass
        except FileNotFoundError as exc:
            log.error("call.prompt_missing", call_id=leg.call_id, error=str(exc))
            await leg.hangup(480, "Temporarily Unavailable")

    trunk = default_trunk(cfg)
    settings = pool_settings(cfg, edge, trunk)
    pool = WorkerPool(settings, on_incoming)
    if trunk is not None:
        pool.caller_id_for = trunk.caller_id_for
    edge_process = app.get(EDGE)
    if edge_process is not None:  # the edge started first (it stops after the pool drained)
        pool.on_worker_state.append(edge_process.set_worker_state)
    status.workers_total = settings.count

    def track(_index: int, _up: bool) -> None:
        status.workers_up = pool.up

    pool.on_worker_state.append(track)
    sink = app.get(USAGE_SINK)
    if sink is not None:

        def record_usage(leg: SipLeg) -> None:
            event = call_usage(leg)
            if event is not None:
                sink.record(event)

        pool.leg_ended_hooks.append(record_usage)
    if not edge:
        log.warning(
            "sip.no_edge",
            note="development mode: no Kamailio edge; one worker takes SIP itself (4 calls)",
            listen=f"{settings.host}:{settings.base_port}",
        )
    await pool.start()
    app[POOL] = pool
    messenger = SipMessenger(pool)  # SIP MESSAGE, both ways, through the edge

    async def message_in(from_user: str, to_user: str, text: str) -> None:
        await sip_inbound(app, from_user, to_user, text)

    messenger.on_inbound = message_in
    app[MESSAGE_TRANSPORT] = messenger
    app[ORIGINATOR] = PoolOriginator(pool)
    try:
        yield
    finally:
        status.draining = True
        if edge_process is not None:
            # New INVITEs get 503 at the edge; in-dialog requests still reach their worker.
            for worker in pool.workers:
                edge_process.set_worker_state(worker.index, False)
        await pool.stop(grace=cfg.sip.workers.drain_grace)
        status.workers_up = 0

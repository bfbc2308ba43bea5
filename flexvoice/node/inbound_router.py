"""What happens to an incoming call: number lookup, 404 (unknown number), 403 (suspended
account), the number's flow, Voice Continuity, or the number's prompt.

`route_inbound` takes its lookups as arguments, so it is tested without SIP; `InboundRouter`
binds it to the node's number registry, flow runtime and call registry and is what the worker
pool calls for each new call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from flexvoice.callcontrol import CallEnded, CallLeg, CallObserver
from flexvoice.calls import CallRegistry
from flexvoice.continuity import continuity_target
from flexvoice.flows.validate import prompt_file
from flexvoice.logs import bind_call, get_logger
from flexvoice.sip.leg import SipLeg

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
    prompts_dir: Path
    # Called once a number is found, before anything else happens to the call: the API's
    # call registry records inbound calls (GET /v1/calls) and observes them from then on.
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
        # The flow runtime applies the number's Voice Continuity switch itself (and records
        # a reroute when the account's tariff prices it).
        await deps.flows.start_call(leg, route.flow, account=route.account, observer=observer)
        return "flow"
    override = deps.numbers.continuity_for(leg.callee) if deps.numbers is not None else None
    forward_to = continuity_target(override)
    if forward_to is not None:
        # Voice Continuity: the network reroutes; no media through the engine.
        await leg.redirect(forward_to)
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


class InboundRouter:
    """The worker pool's `on_incoming`: routes each new call with the node's parts."""

    def __init__(
        self,
        numbers: NumberLookup | None,
        flows: FlowStarter | None,
        prompts_dir: Path,
        calls: CallRegistry | None,
    ):
        self.deps = InboundDeps(numbers, flows, prompts_dir, self.observe)
        self.calls = calls

    def observe(self, leg: CallLeg, route: NumberRoute) -> CallObserver | None:
        """Record the inbound call in the API's call registry, which observes it from now on."""
        if self.calls is None:
            return None
        self.calls.create(
            account=route.account,
            direction="inbound",
            from_number=leg.caller,
            to_number=leg.callee,
            flow=route.flow,
            call_id=leg.call_id,
        )
        if isinstance(leg, SipLeg):
            leg.observer = self.calls
        return self.calls

    async def __call__(self, leg: SipLeg) -> None:
        bind_call(leg.call_id)
        try:
            what = await route_inbound(leg, self.deps)
            log.info(
                "call.routed",
                call_id=leg.call_id,
                worker=leg.worker.index,
                number=leg.callee,
                route=what,
            )
        except CallEnded:
            pass
        except FileNotFoundError as exc:
            log.error("call.prompt_missing", call_id=leg.call_id, error=str(exc))
            await leg.hangup(480, "Temporarily Unavailable")

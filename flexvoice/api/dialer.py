"""Outbound calls placed over REST: originate through the SIP layer's `Originator`, then hand
the answered leg to the flow runtime. One asyncio task per call, so POST /v1/calls answers at
once (status queued) and the call's progress arrives through the CallObserver (the registry).

The leg reports its own `ringing`, `answered` and `ended`; this module writes only what
happens before there is a leg (`initiated`, an origination the SIP layer refused). Hanging
up over REST ends the leg with `ended_by: api`, which ends its whole tree (the dialled legs
bridged to it); the flow then sees the call end, as it would see the caller leave.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from flexvoice.callcontrol import CallEnded, CallLeg, EndedBy, Originator
from flexvoice.calls import CallRecord, CallRegistry
from flexvoice.flows.interpreter import FLOW_MOVED
from flexvoice.flows.model import Flow
from flexvoice.logs import bind_call, get_logger
from flexvoice.recordings.service import RecordingService

log = get_logger(__name__)


class FlowStarter(Protocol):
    """The part of the flow runtime (flexvoice.flows, FlowRuntime) the API uses."""

    @property
    def flows(self) -> Mapping[str, object]:
        """The loaded flows by name (a call naming another is refused before it rings)."""

    def start_call(
        self,
        leg: CallLeg,
        flow_name: str,
        *,
        account: str,
        variables: dict[str, str] | None = None,
        observer: Any = None,
        flow: Flow | None = None,
    ) -> Any:
        """Run the flow on the leg; awaitable (or a Task) that ends when the flow does."""


@dataclass
class LiveCall:
    task: asyncio.Task[None]
    leg: CallLeg | None = None
    flow_task: asyncio.Task[Any] | None = None
    recording_channels: int = 1  # of its `record: true` recording


class Dialer:
    def __init__(self, registry: CallRegistry):
        self.registry = registry
        self.live: dict[str, LiveCall] = {}
        self.recordings: RecordingService | None = None  # `record: true` calls use it

    def place(
        self,
        call: CallRecord,
        originator: Originator,
        runtime: FlowStarter | None,
        *,
        ring_timeout: float,
        variables: dict[str, str],
        flow: Flow | None = None,
        recording_channels: int = 1,
    ) -> None:
        """`flow`: a validated flow document (flow_inline, flow_url) to run instead of the
        flow file named call.flow."""
        task = asyncio.create_task(
            self._run(call, originator, runtime, ring_timeout, variables, flow),
            name=f"call-{call.id}",
        )
        live = LiveCall(task, recording_channels=recording_channels)
        self.live[call.id] = live
        task.add_done_callback(lambda _t: self._forget(call.id, live))

    async def _run(
        self,
        call: CallRecord,
        originator: Originator,
        runtime: FlowStarter | None,
        ring_timeout: float,
        variables: dict[str, str],
        flow: Flow | None = None,
    ) -> None:
        bind_call(call.id)
        reg = self.registry
        reg.call_event(call.id, "initiated", {"to": call.to_number, "from": call.from_number})
        try:
            leg, attempt = await originator.originate(
                call.to_number,
                call.from_number,
                ring_timeout=ring_timeout,
                call_id=call.id,
                observer=reg,
                account=call.account,  # the SIP layer bills the leg (its `call` usage event)
            )
        except asyncio.CancelledError:
            # Hung up while ringing: the leg sent its CANCEL and reports its end itself;
            # this records the end of a call whose INVITE never left.
            reg.finish(call.id, "canceled", sip_status=487, cause="canceled_by_api")
            raise
        except Exception as exc:  # the SIP layer refused (no free worker, trunk down, ...)
            log.warning("call.originate_failed", error=repr(exc))
            reg.finish(call.id, "failed", sip_status=None, cause=f"originate_error: {exc}")
            return
        if leg is None:
            # The leg reported its end; an originator that had no leg to report it (the
            # registry keeps the first "ended" only) is covered by this one.
            reg.call_event(
                call.id,
                "ended",
                {
                    "outcome": attempt.outcome,
                    "sip_status": attempt.sip_status,
                    "cause": attempt.reason,
                    # Our ring timeout ended a no-answer; the far end ended anything else.
                    "ended_by": "flow" if attempt.outcome == "no-answer" else "callee",
                },
            )
            return
        live = self.live.get(call.id)
        if live is not None:
            live.leg = leg
        if call.record:
            await self._record(call, leg)
        await self._run_flow(call, leg, runtime, call.flow, variables, flow)

    async def _record(self, call: CallRecord, leg: CallLeg) -> None:
        """`"record": true`: both parties from the answer on; it closes with the leg."""
        if self.recordings is None:
            log.warning("call.record_unavailable", why="no recordings service on this node")
            return
        live = self.live.get(call.id)
        channels = live.recording_channels if live is not None else 1
        try:
            await self.recordings.start(leg, call.account, channels=channels)
        except Exception:  # the recording's row says why; the call goes on
            log.exception("call.record_failed")

    async def _run_flow(
        self,
        call: CallRecord,
        leg: CallLeg,
        runtime: FlowStarter | None,
        flow: str | None,
        variables: dict[str, str],
        document: Flow | None = None,
    ) -> None:
        try:
            if runtime is not None and flow is not None:
                # Only a flow document is passed on: a runtime that runs files only (and the
                # tests' stand-ins) keeps working for named flows.
                extra = {"flow": document} if document is not None else {}
                started = runtime.start_call(
                    leg,
                    flow,
                    account=call.account,
                    variables=variables,
                    observer=self.registry,
                    **extra,
                )
                task: asyncio.Future[Any] = (
                    asyncio.ensure_future(started)
                    if inspect.isawaitable(started)
                    else asyncio.get_running_loop().create_future()
                )
                if not inspect.isawaitable(started):
                    task.set_result(None)
                live = self.live.get(call.id)
                if live is not None and isinstance(task, asyncio.Task):
                    live.flow_task = task
                await task
        except CallEnded:
            pass  # the leg reported how and by whom
        except Exception as exc:
            log.exception("call.flow_failed", error=repr(exc))
        # The flow ended (or there was none): the call ends with it, and so do its legs. A
        # move cancels this task before: the leg then goes on with the next flow.
        await self._hangup_quietly(leg, "flow")

    @staticmethod
    async def _hangup_quietly(leg: CallLeg, ended_by: EndedBy) -> None:
        try:
            await leg.hangup(ended_by=ended_by)
        except Exception as exc:  # the leg may already be gone
            log.debug("call.hangup_ignored", error=repr(exc))

    async def hangup(self, call_id: str, ended_by: EndedBy = "api") -> bool:
        """End a live call: cancel it while it rings, hang up once answered. False when the
        node holds no such live call (it ended, or another node placed it)."""
        live = self.live.get(call_id)
        if live is None:
            return False
        if live.leg is None:
            live.task.cancel()
            return True
        # The leg's end ends the flow's waits (CallEnded) and every leg it dialled.
        await self._hangup_quietly(live.leg, ended_by)
        return True

    async def move(self, call: CallRecord, runtime: FlowStarter | None, flow: str) -> bool:
        """Stop the flow the answered call runs and start `flow` on the same leg."""
        live = self.live.get(call.id)
        if live is None or live.leg is None:
            return False
        leg = live.leg
        if live.flow_task is not None:
            live.flow_task.cancel(FLOW_MOVED)
        live.task.cancel(FLOW_MOVED)
        self.registry.call_event(call.id, "moved", {"flow": flow})
        new = LiveCall(asyncio.create_task(self._run_flow(call, leg, runtime, flow, {})), leg=leg)
        self.live[call.id] = new
        new.task.add_done_callback(lambda _t: self._forget(call.id, new))
        return True

    def _forget(self, call_id: str, live: LiveCall) -> None:
        if self.live.get(call_id) is live:
            del self.live[call_id]

    async def close(self) -> None:
        """Node shutdown: hang up what is still up (the SIP layer drains its side too)."""
        for call_id in list(self.live):
            await self.hangup(call_id, "node_shutdown")
        tasks = [live.task for live in self.live.values()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

"""`SipLeg`: the CallLeg protocol (flexvoice.callcontrol) on top of the worker pool.

A leg is one call on one worker, and a node of its call's tree: a first leg (inbound, or
placed over REST) and the children it dials. Its life is `LegMachine` (flexvoice.legstate),
which this class feeds with the worker's events and whose commands it carries out: trace
events to the observer, a hang-up to the worker, and - when the leg ends - the end of
every child, so no leg outlives its call. Coroutines send commands and wait for the events
that answer them; any wait ends with `CallEnded` once the leg is gone.

The leg knows the pool only through `LegHost` (what it asks of it), so this module imports
nothing of the pool's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from flexvoice.callcontrol import (
    CallEnded,
    CallObserver,
    DialAttempt,
    DialResult,
    new_call_id,
)
from flexvoice.callevent import call_event
from flexvoice.legstate import (
    Answered,
    Command,
    Disconnected,
    EndTree,
    Event,
    HangupAsked,
    LegMachine,
    Lost,
    ReportEvent,
    Ringing,
    SendHangup,
)
from flexvoice.logs import get_logger
from flexvoice.outcomes import DialOutcome, EndedBy, outcome_for
from flexvoice.sip import metrics
from flexvoice.sip.legmedia import LegMedia
from flexvoice.sip.protocol import Message
from flexvoice.sip.ringing import ring
from flexvoice.sip.slots import NoFreeSlot

log = get_logger(__name__)

HANGUP_WAIT = 5.0
ANSWER_WAIT = 32.0  # Timer B/H: an ACK that never comes

__all__ = ["LegHost", "NoFreeSlot", "SipLeg", "new_call_id", "number_of", "outcome_for"]


def number_of(uri: str) -> str:
    """'<sip:+3225550100@host>;tag=x' -> '+3225550100' (the user part, else the URI)."""
    inner = uri.split("<", 1)[-1].split(">", 1)[0]
    inner = inner.split(":", 1)[-1] if inner.startswith(("sip:", "sips:", "tel:")) else inner
    user = inner.split("@", 1)[0].split(";", 1)[0]
    return user or uri


class WorkerLink(Protocol):
    """The worker a leg lives on (flexvoice.sip.pool.WorkerProcess)."""

    index: int

    @property
    def free(self) -> int: ...

    def send(self, t: str, **fields: Any) -> None: ...


class LegHost(Protocol):
    """What a leg asks of the pool (flexvoice.sip.pool.WorkerPool)."""

    leg_ended_hooks: list[Callable[[SipLeg], None]]

    def target_uri(self, target: str) -> str: ...

    def originate(
        self, uri: str, caller_id: str | None, *, near: SipLeg | None = None, call_id: str = ""
    ) -> SipLeg: ...


class SipLeg(LegMedia):
    direction: Literal["inbound", "outbound"]

    def __init__(
        self,
        pool: LegHost,
        worker: WorkerLink,
        worker_call: str,
        direction: Literal["inbound", "outbound"],
        caller: str,
        callee: str,
        call_id: str = "",
        parent: SipLeg | None = None,
    ):
        super().__init__()
        loop = asyncio.get_running_loop()
        self.pool = pool
        self.worker = worker
        self.worker_call = worker_call  # the worker's own id: never shown outside the pool
        self.direction = direction
        self.caller = caller
        self.callee = callee
        self.call_id = call_id or new_call_id()
        self.parent = parent
        self.remote_parent: str | None = None  # the parent's call id when another node has it
        self.children: list[SipLeg] = []
        self.account: str | None = None
        self.observer: CallObserver | None = None
        self.started_at = datetime.now(UTC)
        self.machine = LegMachine(direction, self.started_at)
        self.usage: dict[str, Any] | None = None  # the leg's `call` usage event, once ended
        self.created = loop.time()
        self.bridged_to: SipLeg | None = None
        self.transfer_error: str | None = None  # the worker's report of a refused REFER
        self.on_ended: list[Callable[[SipLeg], None]] = []

    @classmethod
    def inbound(cls, pool: LegHost, worker: WorkerLink, worker_call: str, msg: Message) -> SipLeg:
        ruri = str(msg.get("ruri", ""))
        callee = number_of(ruri) if ruri else number_of(str(msg.get("to", "")))
        caller = number_of(str(msg.get("from", "")))
        leg = cls(pool, worker, worker_call, "inbound", caller, callee)
        leg.sip_call_id = str(msg.get("sip_call_id", ""))
        return leg

    @classmethod
    def outbound(
        cls,
        pool: LegHost,
        worker: WorkerLink,
        worker_call: str,
        uri: str,
        call_id: str = "",
        caller: str = "",
    ) -> SipLeg:
        return cls(pool, worker, worker_call, "outbound", caller, number_of(uri), call_id)

    sip_call_id = ""

    # -- state ------------------------------------------------------------------------------
    @property
    def answered(self) -> bool:
        return self.machine.answered

    @property
    def answered_at(self) -> datetime | None:
        return self.machine.answered_at

    @property
    def ended_at(self) -> datetime | None:
        return self.machine.ended_at

    @property
    def final_status(self) -> int | None:
        return self.machine.final_status

    @property
    def final_reason(self) -> str:
        return self.machine.reason

    @property
    def cause(self) -> str:
        return self.machine.cause

    @property
    def ended_by(self) -> EndedBy | None:
        return self.machine.ended_by

    @property
    def parent_call_id(self) -> str | None:
        return self.parent.call_id if self.parent is not None else self.remote_parent

    @property
    def recordings_pending(self) -> bool:
        return any(key.startswith("rec") for key in self._done)

    @property
    def billable_seconds(self) -> int:
        return self.machine.talk_seconds

    def send(self, t: str, **fields: Any) -> None:
        self.worker.send(t, call=self.worker_call, **fields)

    def notify(self, kind: str, **data: object) -> None:
        if self.observer is not None:
            self.observer.call_event(self.call_id, kind, data)

    # -- the state machine's events and commands --------------------------------------------
    def _handle(self, event: Event) -> None:
        for command in self.machine.handle(event, datetime.now(UTC)):
            self._run(command)

    def _run(self, command: Command) -> None:
        if isinstance(command, SendHangup):
            # A worker that is gone cannot hang up; its exit ends this leg (Lost).
            with contextlib.suppress(ConnectionError):
                self.send("hangup", code=command.sip_status, reason=command.reason)
        elif isinstance(command, EndTree):
            for child in self.children:
                # Same cause for the whole tree: the child of a call the caller left was ended
                # by the caller too. A child still ringing gets a CANCEL, an answered one a BYE.
                child.end(command.ended_by, 487 if not child.answered else 200, "call ended")
        elif isinstance(command, ReportEvent):
            if command.kind == "ended":
                self._ended(command.data)
            elif command.kind == "answered":
                metrics.SETUP_SECONDS.observe(asyncio.get_running_loop().time() - self.created)
                self.notify("answered", **command.data)
            else:
                self.notify(command.kind, **command.data)

    def on_event(self, msg: Message) -> None:
        if msg.t == "state":
            state, code = str(msg.get("state")), int(msg.get("code") or 0)
            if state == "early":
                self._handle(Ringing(code or 180))
            elif state == "confirmed":
                self._handle(Answered(code or 200))
            elif state == "disconnected":
                self._handle(Disconnected(code, str(msg.get("reason") or "")))
        elif msg.t == "dtmf":
            digit = str(msg.get("digit"))
            self.digits.append(digit)
            self._last_digit = digit
            self.notify("dtmf", digit=digit, method=msg.get("method"))
        elif msg.t == "play_done":
            self._finish(str(msg.get("play")), str(msg.get("stopped")))
        elif msg.t == "talk":
            self.talk_heard(bool(msg.get("talking")), float(msg.get("seconds") or 0))
        elif msg.t == "record_done":
            self._finish(str(msg.get("rec")), (str(msg.get("path")), float(msg.get("seconds"))))
        elif msg.t == "error":
            fields = {k: v for k, v in msg.fields.items() if k != "call"}
            report = log.debug if msg.get("ended") else log.warning  # see WorkerPool.on_event
            report("call.command_failed", call_id=self.call_id, **fields)
            if msg.get("cmd") == "transfer":
                self.transfer_error = str(msg.get("message"))
            for key, fut in list(self._done.items()):
                if key.startswith(str(msg.get("cmd"))) and not fut.done():
                    fut.set_exception(RuntimeError(str(msg.get("message"))))
        self._wake()

    def lost(self, cause: str = "worker_lost") -> None:
        """The worker holding this call died."""
        self._handle(Lost())
        for fut in self._done.values():  # no record_done will come from a dead worker
            if not fut.done():
                fut.set_exception(CallEnded(cause, 503))
        self._wake()

    def _ended(self, data: dict[str, object]) -> None:
        m = self.machine
        outcome = str(m.outcome)
        metrics.CALLS.labels(self.direction, outcome).inc()
        for key, fut in self._done.items():
            # A recording's record_done still comes, once its file is closed: wait for it.
            if not fut.done() and not key.startswith("rec"):
                fut.set_exception(CallEnded(m.cause, m.final_status))
        if self.account is not None and m.ended_at is not None:
            self.usage = call_event(
                call_id=self.call_id,
                account=self.account,
                direction=self.direction,
                caller=self.caller,
                callee=self.callee,
                started_at=self.started_at,
                answered_at=m.answered_at,
                ended_at=m.ended_at,
                parent_call_id=self.parent_call_id,
            )
        # The registry prices the very event the usage feed gets (one event, one rating).
        self.notify("ended", **data, usage=self.usage)
        log.info(
            "call.ended",
            call_id=self.call_id,
            parent_call_id=self.parent_call_id,
            direction=self.direction,
            sip_status=m.final_status,
            reason=m.reason,
            cause=m.cause,
            ended_by=m.ended_by,
            seconds=m.talk_seconds,
        )
        for hook in (*self.pool.leg_ended_hooks, *self.on_ended):
            try:
                hook(self)
            except Exception:
                log.exception("call.ended_hook_failed", call_id=self.call_id)

    # -- CallLeg ----------------------------------------------------------------------------
    @property
    def media_worker(self) -> str:
        """Where this leg's audio is mixed: legs in one conference room part share it."""
        return f"worker {self.worker.index}"

    async def ring(self, early_media: bool = False) -> None:
        self._check()
        self.send("ring", code=183 if early_media else 180)

    async def answer(self) -> None:
        self._check()
        if self.answered:
            return
        self.send("answer")
        await self.wait_until(lambda: self.answered or self.ended, ANSWER_WAIT)
        self._check()

    def place_child(self, target: str, caller_id: str | None, *, near: bool) -> SipLeg:
        """Start ringing `target` as a child of this leg: a call resource of its own (its
        `leg` event tells the observer before any other), ended with this leg."""
        uri = self.pool.target_uri(target)
        leg = self.pool.originate(uri, caller_id, near=self if near else None)
        leg.parent = self
        leg.account = self.account
        leg.observer = self.observer
        self.children.append(leg)
        self.notify_child(leg)
        return leg

    def notify_child(self, leg: SipLeg) -> None:
        if self.observer is not None:
            self.observer.call_event(
                leg.call_id,
                "leg",
                {"parent_call_id": self.call_id, "from": leg.caller, "to": leg.callee},
            )

    async def dial(
        self,
        targets: Sequence[str],
        *,
        ring_timeout: float,
        caller_id: str | None = None,
        bridge: bool = True,
    ) -> DialResult:
        self._check()
        refused: dict[str, DialAttempt] = {}
        rung: list[tuple[str, SipLeg]] = []
        shown = caller_id or (self.caller if self.direction == "inbound" else None)
        for target in targets:
            try:
                rung.append((target, self.place_child(target, shown, near=bridge)))
            except NoFreeSlot as exc:
                refused[target] = DialAttempt(target, "failed", 503, exc.reason)
        winner, attempts = await ring(rung, ring_timeout, parent=self)
        by_target = {a.target: a for a in attempts}
        by_target.update(refused)
        ordered = [by_target[t] for t in targets if t in by_target]
        self._check()
        if winner is None:
            return DialResult(ordered)
        winner_target, leg = winner
        if bridge:
            if not self.answered:
                await self.answer()
            self.send("bridge", other=leg.worker_call)
            self.bridged_to = leg
        return DialResult(ordered, answered=leg, answered_target=winner_target)

    async def wait_bridge_end(self) -> str:
        partner = self.bridged_to
        if partner is None:
            self._check()
            return "callee"
        await self.wait_until(lambda: self.ended or partner.ended, None, others=[partner])
        self.bridged_to = None
        if self.ended:  # its tree ends with it: the partner's BYE is on its way
            await partner.wait_until(lambda: partner.ended, HANGUP_WAIT)
        self._check()
        return "callee"

    async def redirect(self, target: str) -> None:
        self._check()
        self.machine.expect("redirected")
        self.send("redirect", target=self.pool.target_uri(target))
        await self.wait_until(lambda: self.ended, HANGUP_WAIT)

    async def transfer(self, target: str) -> None:
        self._check()
        self.machine.expect("transferred")  # once the transferee took it
        self.transfer_error = None
        self.send("transfer", target=self.pool.target_uri(target))
        await self.wait_until(lambda: self.ended or self.transfer_error is not None, 30.0)
        if not self.ended:
            self.machine.cause = ""
            why = self.transfer_error or "no final NOTIFY within 30 s"
            raise RuntimeError(f"transfer to {target} failed: {why}")

    def end(
        self,
        ended_by: EndedBy,
        sip_status: int = 200,
        reason: str = "normal",
        *,
        outcome: DialOutcome | None = None,
        cause: str | None = None,
    ) -> None:
        """Ask the worker to end the leg (BYE once answered, else CANCEL or a final answer)
        without waiting; its end, and its children's, follow from the worker's events."""
        self._handle(HangupAsked(ended_by, sip_status, reason, outcome, cause))

    async def hangup(
        self,
        sip_status: int = 200,
        reason: str = "normal",
        *,
        ended_by: EndedBy = "flow",
        outcome: DialOutcome | None = None,
        cause: str | None = None,
    ) -> None:
        if self.ended:
            return
        self.end(ended_by, sip_status, reason, outcome=outcome, cause=cause)
        await self.wait_until(lambda: self.ended, HANGUP_WAIT)

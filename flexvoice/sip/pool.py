"""The worker pool: N media worker processes, restarted when they die, drained on shutdown.

The control plane's only way to the media workers. Each worker holds at most `max_calls`
calls; the pool counts slots itself (a call takes its slot from the `incoming` event or the
`originate` command until its `disconnected` event), so it can refuse work with a reason
before a worker would answer 486. A worker that dies ends every call it held with cause
`worker_lost` (each leg is told, so the flow and the usage records see it), and is started
again at once (after `restart_backoff` only when it keeps dying); the edge is told at once
both times (`on_worker_state`). Workers start in parallel, a few per core at a time, so a
pool of hundreds comes up without starving the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from flexvoice.errors import UserError
from flexvoice.logs import get_logger
from flexvoice.sip import metrics
from flexvoice.sip.addresses import rtp_ports
from flexvoice.sip.leg import SipLeg
from flexvoice.sip.lines import each_line
from flexvoice.sip.protocol import EVENTS, INTERNAL_PREFIX, Message, ProtocolError, decode, encode
from flexvoice.sip.slots import NoFreeSlot
from flexvoice.sip.template import Template, WorkerProc

__all__ = ["NoFreeSlot", "PoolSettings", "WorkerPool", "WorkerProcess"]

log = get_logger(__name__)

READY_TIMEOUT = 15.0  # from the moment a worker's process is started
# Workers starting at once. Forked from the template a start takes ~5 ms of CPU and ~25 ms
# of waiting (libCreate), so several per core overlap; a fresh interpreter (no template) is
# ~0.25 CPU-s, and this many still start well within READY_TIMEOUT.
STARTS_PER_CORE = 8
# A worker that dies within this long of its start is crash-looping: back off before the next.
STABLE_AFTER = 10.0


@dataclass(frozen=True)
class PoolSettings:
    count: int = 2
    host: str = "127.0.0.1"
    base_port: int = 5070
    max_calls: int = 4
    restart_backoff: float = 1.0
    proxy: str | None = None  # the edge, as outbound proxy: "sip:127.0.0.1:5060;lr"
    rtp_base: int = 20000  # worker n takes RTP ports rtp_ports(rtp_base, n)
    trunk: str | None = None  # host:port[;transport=tcp] E.164 targets go to (via the edge)
    trunk_user: str | None = None  # digest credentials the trunk may challenge for
    trunk_password: str | None = field(default=None, repr=False)
    media_host: str | None = None  # RTP bind address when not the SIP host (loopback)
    template: bool = True  # fork workers from a pre-forked template (else: fresh interpreters)
    # The last `relays` workers place no calls, only conference links (flexvoice.conference.
    # tree); callers must not be sent there (the bench calls workers by port; the edge does
    # not know them yet).
    relays: int = 0


class WorkerProcess:
    def __init__(self, pool: WorkerPool, index: int, port: int):
        self.pool = pool
        self.index = index
        self.port = port
        self.proc: WorkerProc | None = None
        self.legs: dict[str, SipLeg] = {}  # worker call id -> leg
        self.closing: dict[str, SipLeg] = {}  # ended legs whose recordings are closing
        self.reserved = 0  # slots promised to originate commands not yet sent
        self.up = False
        self.ready: asyncio.Future[None] | None = None
        self.reader: asyncio.Task[None] | None = None
        self.stderr_reader: asyncio.Task[None] | None = None
        self.last_stderr = ""
        self.started_at = 0.0  # loop time of the last start

    @property
    def used(self) -> int:
        return len(self.legs) + self.reserved

    @property
    def free(self) -> int:
        return self.pool.settings.max_calls - self.used if self.up else 0

    async def start(self) -> None:
        async with self.pool.starting:
            await self._start()

    async def _start(self) -> None:
        s = self.pool.settings
        ports = rtp_ports(s.rtp_base, self.index)
        args = [
            "--index",
            str(self.index),
            "--host",
            s.host,
            "--port",
            str(self.port),
            "--rtp-port",
            str(ports.start),
            "--rtp-ports",
            str(len(ports)),
        ]
        if s.proxy:
            args += ["--proxy", s.proxy]
        if s.media_host:
            args += ["--media-host", s.media_host]
        if self.index >= s.count - s.relays:
            args.append("--relay")
        env: dict[str, str] = {}
        if s.trunk_user and s.trunk_password:
            env = {
                "FLEXVOICE_TRUNK_USER": s.trunk_user,
                "FLEXVOICE_TRUNK_PASSWORD": s.trunk_password,
            }
        self.ready = asyncio.get_running_loop().create_future()
        self.started_at = asyncio.get_running_loop().time()
        self.proc = await self.pool.new_process(args, env)
        self.reader = asyncio.create_task(self._read_events(self.proc))
        self.stderr_reader = asyncio.create_task(self._read_stderr(self.proc))
        try:
            await asyncio.wait_for(asyncio.shield(self.ready), READY_TIMEOUT)
        except TimeoutError:
            self.kill()
            raise RuntimeError(
                f"worker {self.index} did not start within {READY_TIMEOUT:.0f}s"
            ) from None

    def send(self, t: str, **fields: Any) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            raise ConnectionError(f"worker {self.index} is not running")
        proc.stdin.write(encode(t, **fields))

    def kill(self) -> None:
        if self.proc and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def _read_stderr(self, proc: WorkerProc) -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line:
                self.last_stderr = line
                log.debug("worker.stderr", worker=self.index, line=line)

    async def _read_events(self, proc: WorkerProc) -> None:
        assert proc.stdout is not None
        await each_line(
            proc.stdout,
            self._event,
            lambda: log.error("worker.bad_event", worker=self.index, error="event too long"),
        )
        rc = await proc.wait()
        self.pool.worker_exited(self, rc)

    def _event(self, raw: bytes) -> None:
        try:
            msg = decode(raw, EVENTS)
        except ProtocolError as exc:
            log.error("worker.bad_event", worker=self.index, error=str(exc))
            return
        if msg.t == "ready":
            self.up = True
            if self.ready and not self.ready.done():
                self.ready.set_result(None)
            self.pool.worker_state_changed(self, True)
            return
        self.pool.on_event(self, msg)


IncomingHandler = Callable[[SipLeg], Awaitable[None]]
WorkerStateHook = Callable[[int, bool], None]


class WorkerPool:
    def __init__(self, settings: PoolSettings, on_incoming: IncomingHandler):
        self.settings = settings
        self.on_incoming = on_incoming
        self.on_worker_state: list[WorkerStateHook] = []
        # Told the index of a worker that died while the pool runs (its calls are gone).
        self.on_worker_lost: list[Callable[[int], None]] = []
        # The trunk's caller-ID rule (allowed numbers, default) for calls to E.164 numbers.
        self.caller_id_for: Callable[[str | None], str | None] = lambda requested: requested
        # Called with every leg (inbound, dialled, originated) as it ends: usage, call records.
        self.leg_ended_hooks: list[Callable[[SipLeg], None]] = []
        # Internal calls (INTERNAL_PREFIX): the conference links' far ends.
        self.on_internal: IncomingHandler | None = None
        # SIP MESSAGE events (no call): flexvoice.sip.messages.SipMessenger takes them.
        self.message_hooks: list[Callable[[WorkerProcess, Message], None]] = []
        self.workers = [
            WorkerProcess(self, i, settings.base_port + i) for i in range(settings.count)
        ]
        self.draining = False
        self.stopping = False
        self.tasks: set[asyncio.Task[Any]] = set()
        self.starting = asyncio.Semaphore(STARTS_PER_CORE * (os.cpu_count() or 1))
        self.template: Template | None = None
        metrics.SLOTS_TOTAL.set(settings.count * settings.max_calls)
        # Counted when /metrics is read, not on every call event (a sum over every worker).
        metrics.ACTIVE_CALLS.set_function(lambda: self.active_calls)
        metrics.SLOTS_USED.set_function(lambda: sum(w.used for w in self.workers))

    # -- life cycle -------------------------------------------------------------------------
    async def start(self) -> None:
        if self.settings.template:
            template = Template()
            try:
                await template.start()
                self.template = template
            except OSError as exc:
                log.warning("worker.template_unavailable", error=str(exc))
        try:
            await asyncio.gather(*(w.start() for w in self.workers))
        except BaseException:
            await self.stop(grace=0)
            raise
        log.info("pool.started", workers=len(self.workers), ports=self.ports_text())

    async def new_process(self, args: list[str], env: dict[str, str]) -> WorkerProc:
        """A worker process: forked from the template, or a fresh interpreter without one."""
        if self.template is not None and self.template.alive:
            try:
                return await self.template.spawn(args, env)
            except (ConnectionError, OSError) as exc:
                log.warning("worker.template_failed", error=str(exc))
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "flexvoice.sip.worker",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **env},
            # Own session: a Ctrl-C at the terminal reaches the control plane, which drains
            # calls, not the workers directly. (Forked workers call setsid() themselves.)
            start_new_session=True,
        )

    def ports_text(self) -> str:
        return ",".join(f"{self.settings.host}:{w.port}" for w in self.workers)

    @property
    def up(self) -> int:
        return sum(1 for w in self.workers if w.up)

    @property
    def active_calls(self) -> int:
        return sum(len(w.legs) for w in self.workers)

    def find(self, call_id: str) -> SipLeg | None:
        """The live leg with this call id (CA...), on whichever worker holds it."""
        return next(
            (leg for w in self.workers for leg in w.legs.values() if leg.call_id == call_id), None
        )

    async def stop(self, grace: float) -> None:
        """Drain: take no new calls, let calls end for up to `grace` seconds, hang up the
        rest, then stop the workers."""
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if self.active_calls:
            log.info("pool.draining", calls=self.active_calls, grace=grace)
        while self.active_calls and loop.time() < deadline:
            await asyncio.sleep(0.1)
        for leg in [leg for w in self.workers for leg in w.legs.values()]:
            log.info("pool.hangup_at_shutdown", call_id=leg.call_id)
            with contextlib.suppress(Exception):
                leg.end("node_shutdown", 503, "Service Unavailable")
        hangup_deadline = loop.time() + 3.0
        while self.active_calls and loop.time() < hangup_deadline:
            await asyncio.sleep(0.05)
        self.stopping = True
        for w in self.workers:
            with contextlib.suppress(ConnectionError):
                w.send("shutdown")
        for w in self.workers:
            if w.proc is None:
                continue
            try:
                await asyncio.wait_for(w.proc.wait(), 5.0)
            except TimeoutError:
                w.kill()
                await w.proc.wait()
            if w.reader:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(w.reader, 2.0)
        for task in list(self.tasks):
            task.cancel()
        if self.template is not None:
            await self.template.stop()
        log.info("pool.stopped")

    # -- events from workers ----------------------------------------------------------------
    def worker_state_changed(self, worker: WorkerProcess, up: bool) -> None:
        metrics.WORKERS_UP.set(self.up)
        for hook in self.on_worker_state:
            hook(worker.index, up)
        log.info("worker.up" if up else "worker.down", worker=worker.index, port=worker.port)

    def worker_exited(self, worker: WorkerProcess, rc: int) -> None:
        was_up = worker.up
        worker.up = False
        worker.reserved = 0
        lost = [*worker.legs.values(), *worker.closing.values()]
        worker.legs.clear()
        worker.closing.clear()
        for leg in lost:
            leg.lost("worker_lost")
        if self.ready_pending(worker):
            return
        if was_up:
            self.worker_state_changed(worker, False)
        if self.stopping:
            return
        metrics.WORKER_RESTARTS.inc()
        log.error(
            "worker.died", worker=worker.index, rc=rc, calls_lost=len(lost),
            last_words=worker.last_stderr[-300:],
        )  # fmt: skip
        for hook in self.on_worker_lost:
            hook(worker.index)
        self.spawn(self._restart(worker))

    def ready_pending(self, worker: WorkerProcess) -> bool:
        if worker.ready is not None and not worker.ready.done():
            why = worker.last_stderr.split(": ", 2)[-1] if worker.last_stderr else "no reason given"
            worker.ready.set_exception(
                UserError(
                    f"SIP worker {worker.index} could not start on "
                    f"{self.settings.host}:{worker.port}: {why}; if the port is taken, stop "
                    f"what holds it (ss -lnup | grep :{worker.port}) or change "
                    "sip.workers.base_port (sip.edge.port with --no-edge)"
                )
            )
            return True
        return False

    async def _restart(self, worker: WorkerProcess) -> None:
        # A worker that ran a while is replaced at once; one that died young waits first.
        if asyncio.get_running_loop().time() - worker.started_at < STABLE_AFTER:
            await asyncio.sleep(self.settings.restart_backoff)
        while not self.stopping:
            try:
                await worker.start()
                log.info("worker.restarted", worker=worker.index)
                return
            except (RuntimeError, OSError, UserError) as exc:
                log.error("worker.restart_failed", worker=worker.index, error=str(exc))
                await asyncio.sleep(self.settings.restart_backoff * 2)

    def spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def on_event(self, worker: WorkerProcess, msg: Message) -> None:
        if msg.t in ("message_status", "message_in"):
            for hook in self.message_hooks:
                hook(worker, msg)
            return
        call = msg.call
        if msg.t == "incoming":
            assert call is not None
            leg = SipLeg.inbound(self, worker, call, msg)
            worker.legs[call] = leg
            if self.draining:
                leg.end("node_shutdown", 503, "Service Unavailable")
                return
            internal = leg.callee.startswith(INTERNAL_PREFIX)
            handler = self.on_internal if internal else None
            if internal and handler is None:
                leg.send("hangup", code=404, reason="Not Found")
                return
            self.spawn(self._run_incoming(leg, handler))
            return
        key = call or ""
        leg_or_none = worker.legs.get(key) or worker.closing.get(key)
        if leg_or_none is None:
            if msg.t == "error":  # a leg already gone: its worker id means nothing outside
                fields = {k: v for k, v in msg.fields.items() if k != "call"}
                # A command that crossed its call's end (the flow played to a caller who had
                # just hung up) is no fault; a call id the worker never knew is one.
                report = log.debug if msg.get("ended") else log.warning
                report("worker.error", worker=worker.index, **fields)
            return
        leg_or_none.on_event(msg)
        if msg.t == "state" and msg.get("state") == "disconnected":
            worker.legs.pop(key, None)
            if leg_or_none.recordings_pending:
                # Its slot is free; its record_done events still come (file being closed).
                worker.closing[key] = leg_or_none
        elif msg.t == "record_done" and not leg_or_none.recordings_pending:
            worker.closing.pop(key, None)

    async def _run_incoming(self, leg: SipLeg, handler: IncomingHandler | None = None) -> None:
        try:
            await (handler or self.on_incoming)(leg)
        except Exception:
            log.exception("call.handler_failed", call_id=leg.call_id)
        finally:
            if not leg.ended:
                await leg.hangup(500 if not leg.answered else 200, "handler ended")

    def target_uri(self, target: str) -> str:
        """An E.164 number goes to the trunk; a SIP URI is used as it is."""
        if target.startswith(("sip:", "sips:")):
            return target
        if not self.settings.trunk:
            raise NoFreeSlot("no trunk configured for calls to numbers (sip/trunks.yaml)")
        return f"sip:{target}@{self.settings.trunk}"

    # -- placing work -----------------------------------------------------------------------
    def pick(self, near: SipLeg | None = None) -> WorkerProcess:
        """A worker with a free slot: `near`'s own worker when legs must be bridged."""
        if self.draining:
            raise NoFreeSlot("the node is shutting down")
        if near is not None:
            worker = near.worker
            assert isinstance(worker, WorkerProcess)  # a leg lives on one of this pool's
            if worker.free > 0:
                return worker
            raise NoFreeSlot(f"worker {near.worker.index} holding the call has no free slot")
        callers = self.workers[: len(self.workers) - self.settings.relays]
        candidates = [w for w in callers if w.free > 0]
        if not candidates:
            raise NoFreeSlot(
                f"all {len(self.workers) * self.settings.max_calls} call slots are in use"
            )
        return max(candidates, key=lambda w: w.free)

    def originate(
        self, uri: str, caller_id: str | None, *, near: SipLeg | None = None, call_id: str = ""
    ) -> SipLeg:
        """Start an outbound leg (INVITE sent); its events arrive on the returned leg. The
        leg's `caller` is the caller ID really presented (the trunk's rule applied)."""
        worker = self.pick(near)
        if uri.endswith(f"@{self.settings.trunk}"):
            caller_id = self.caller_id_for(caller_id)
        worker_call = f"w{worker.index}.{os.getpid()}.o{next(_counter)}"
        leg = SipLeg.outbound(self, worker, worker_call, uri, call_id, caller_id or "")
        worker.legs[worker_call] = leg
        worker.send("originate", call=worker_call, uri=uri, caller_id=caller_id or "")
        return leg


_counter = itertools.count(1)

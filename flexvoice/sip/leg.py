"""`SipLeg`: the CallLeg protocol (flexvoice.callcontrol) on top of the worker pool.

A leg is one call on one worker. Worker events (flexvoice.sip.protocol) update its state;
coroutines send commands and wait for the events that answer them. Any wait ends with
`CallEnded` when the call is gone, whether the far end hung up or the worker died.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from flexvoice.callcontrol import (
    CallEnded,
    CallObserver,
    DialAttempt,
    DialOutcome,
    DialResult,
    DigitsResult,
    PlayResult,
    RecordResult,
)
from flexvoice.digits import DigitCollector
from flexvoice.logs import get_logger
from flexvoice.sip import metrics
from flexvoice.sip.protocol import Message

if TYPE_CHECKING:
    from flexvoice.sip.pool import WorkerPool, WorkerProcess

log = get_logger(__name__)

_ids = itertools.count(1)
HANGUP_WAIT = 5.0
ANSWER_WAIT = 32.0  # Timer B/H: an ACK that never comes


def outcome_for(status: int) -> DialOutcome:
    """Twilio's vocabulary for a final SIP status of an unanswered call."""
    if status in (486, 600, 603):
        return "busy"
    if status in (408, 480):
        return "no-answer"
    if status == 487:
        return "canceled"
    return "failed"


def number_of(uri: str) -> str:
    """'<sip:+3225550100@host>;tag=x' -> '+3225550100' (the user part, else the URI)."""
    inner = uri.split("<", 1)[-1].split(">", 1)[0]
    inner = inner.split(":", 1)[-1] if inner.startswith(("sip:", "sips:", "tel:")) else inner
    user = inner.split("@", 1)[0].split(";", 1)[0]
    return user or uri


class SipLeg:
    direction: Literal["inbound", "outbound"]

    def __init__(
        self,
        pool: WorkerPool,
        worker: WorkerProcess,
        worker_call: str,
        direction: Literal["inbound", "outbound"],
        caller: str,
        callee: str,
        call_id: str,
    ):
        loop = asyncio.get_running_loop()
        self.pool = pool
        self.worker = worker
        self.worker_call = worker_call
        self.direction = direction
        self.caller = caller
        self.callee = callee
        self.call_id = call_id
        self.account: str | None = None
        self.observer: CallObserver | None = None
        self.state = "new"
        self.final_status: int | None = None
        self.final_reason = ""
        self.cause = ""
        self.started_at = datetime.now(UTC)
        self.answered_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.created = loop.time()
        self.digits: list[str] = []
        self.bridged_to: SipLeg | None = None
        self.dialled = 0  # outbound legs this leg started (their ids: <call_id>:out<n>)
        self.transfer_error: str | None = None  # the worker's report of a refused REFER
        self.recording: tuple[str, asyncio.Future[tuple[str, float]]] | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._done: dict[str, asyncio.Future[Any]] = {}  # play/rec id -> its end
        self._last_digit: str | None = None
        self.on_ended: list[Callable[[SipLeg], None]] = []

    @classmethod
    def inbound(
        cls, pool: WorkerPool, worker: WorkerProcess, worker_call: str, msg: Message
    ) -> SipLeg:
        ruri = str(msg.get("ruri", ""))
        callee = number_of(ruri) if ruri else number_of(str(msg.get("to", "")))
        leg = cls(
            pool,
            worker,
            worker_call,
            "inbound",
            number_of(str(msg.get("from", ""))),
            callee,
            call_id=f"{worker_call}",
        )
        leg.sip_call_id = str(msg.get("sip_call_id", ""))
        return leg

    @classmethod
    def outbound(
        cls, pool: WorkerPool, worker: WorkerProcess, worker_call: str, uri: str, call_id: str
    ) -> SipLeg:
        return cls(pool, worker, worker_call, "outbound", "", number_of(uri), call_id)

    sip_call_id = ""

    # -- state ------------------------------------------------------------------------------
    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    @property
    def ended(self) -> bool:
        return self.state == "disconnected"

    @property
    def recordings_pending(self) -> bool:
        return any(key.startswith("rec") for key in self._done)

    @property
    def billable_seconds(self) -> int:
        if self.answered_at is None or self.ended_at is None:
            return 0
        return max(0, int((self.ended_at - self.answered_at).total_seconds() + 0.999))

    def send(self, t: str, **fields: Any) -> None:
        self.worker.send(t, call=self.worker_call, **fields)

    def notify(self, kind: str, **data: object) -> None:
        if self.observer is not None:
            self.observer.call_event(self.call_id, kind, data)

    def on_event(self, msg: Message) -> None:
        if msg.t == "state":
            self._on_state(str(msg.get("state")), int(msg.get("code") or 0), msg.get("reason"))
        elif msg.t == "dtmf":
            digit = str(msg.get("digit"))
            self.digits.append(digit)
            self._last_digit = digit
            self.notify("dtmf", digit=digit, method=msg.get("method"))
        elif msg.t == "play_done":
            self._finish(str(msg.get("play")), str(msg.get("stopped")))
        elif msg.t == "record_done":
            self._finish(str(msg.get("rec")), (str(msg.get("path")), float(msg.get("seconds"))))
        elif msg.t == "error":
            log.warning("call.command_failed", call_id=self.call_id, **msg.fields)
            if msg.get("cmd") == "transfer":
                self.transfer_error = str(msg.get("message"))
            for key, fut in list(self._done.items()):
                if key.startswith(str(msg.get("cmd"))) and not fut.done():
                    fut.set_exception(RuntimeError(str(msg.get("message"))))
        self._wake()

    def _on_state(self, state: str, code: int, reason: object) -> None:
        if self.ended:
            return
        loop = asyncio.get_running_loop()
        if state == "early" and self.state == "new":
            self.state = "early"
            self.notify("ringing", sip_status=code)
        elif state == "confirmed" and self.answered_at is None:
            self.state = "confirmed"
            self.answered_at = datetime.now(UTC)
            metrics.SETUP_SECONDS.observe(loop.time() - self.created)
            # The leg's own times travel with the events, so the call registry prices the
            # very duration the usage event bills (flexvoice.sip.usage).
            self.notify("answered", sip_status=code, at=self.answered_at.isoformat())
        elif state == "disconnected":
            self._end(code, str(reason or ""), self.cause or "")

    def lost(self, cause: str) -> None:
        """The worker holding this call died."""
        if not self.ended:
            self._end(503, "worker lost", cause)
        for fut in self._done.values():  # no record_done will come from a dead worker
            if not fut.done():
                fut.set_exception(CallEnded(cause, 503))
        self._wake()

    def _end(self, code: int, reason: str, cause: str) -> None:
        self.state = "disconnected"
        self.ended_at = datetime.now(UTC)
        # The call's SIP status is the final answer to its INVITE: 200 once answered, whatever
        # PJSIP reports for the BYE (it echoes the code a hangup was given).
        self.final_status = 200 if self.answered else code
        self.final_reason = reason
        if not cause:
            cause = "normal" if self.answered else outcome_for(code)
        self.cause = cause
        outcome = "completed" if self.answered else outcome_for(code)
        metrics.CALLS.labels(self.direction, outcome).inc()
        for key, fut in self._done.items():
            # A recording's record_done still comes, once its file is closed: wait for it.
            if not fut.done() and not key.startswith("rec"):
                fut.set_exception(CallEnded(cause, code))
        self.notify(
            "ended",
            sip_status=self.final_status,
            reason=reason,
            cause=cause,
            outcome=outcome,
            billable_seconds=self.billable_seconds,
            at=self.ended_at.isoformat(),
        )
        log.info(
            "call.ended",
            call_id=self.call_id,
            direction=self.direction,
            sip_status=self.final_status,
            cause=cause,
            seconds=self.billable_seconds,
        )
        for hook in (*self.pool.leg_ended_hooks, *self.on_ended):
            try:
                hook(self)
            except Exception:
                log.exception("call.ended_hook_failed", call_id=self.call_id)

    def _finish(self, key: str, value: Any) -> None:
        fut = self._done.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_result(value)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _check(self) -> None:
        if self.ended:
            raise CallEnded(self.cause or "remote_hangup", self.final_status)

    async def wait_until(
        self, done: Callable[[], bool], timeout: float | None, *, others: Sequence[SipLeg] = ()
    ) -> bool:
        """Wait until `done()`; False on timeout. Wakes on events of this leg and `others`."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not done():
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            fut: asyncio.Future[None] = loop.create_future()
            for leg in (self, *others):
                leg._waiters.append(fut)
            try:
                await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                return done()
        return True

    async def _command_done(self, prefix: str, t: str, **fields: Any) -> Any:
        """Send a command whose end an event reports (play_done, record_done); await it."""
        self._check()
        key = f"{prefix}{next(_ids)}"
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._done[key] = fut
        self.send(t, **{("play" if prefix == "play" else "rec"): key}, **fields)
        return key, fut

    # -- CallLeg ----------------------------------------------------------------------------
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

    async def play(
        self, prompts: Sequence[Path], *, loop: bool = False, stop_on_dtmf: bool = False
    ) -> PlayResult:
        missing = [str(p) for p in prompts if not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(f"prompt file not found: {', '.join(missing)}")
        self._last_digit = None
        _key, fut = await self._command_done(
            "play",
            "play",
            files=[str(Path(p).resolve()) for p in prompts],
            loop=loop,
            stop_on_dtmf=stop_on_dtmf,
        )
        stopped = await fut
        if stopped == "hangup":  # the worker reports the end of the prompt before the call's
            raise CallEnded("remote_hangup")
        return PlayResult(interrupted_by=self._last_digit if stopped == "dtmf" else None)

    async def stop_play(self) -> None:
        self._check()
        self.send("stop_play")

    async def collect_digits(
        self,
        *,
        max_digits: int,
        timeout: float,
        inter_digit_timeout: float | None = None,
        terminators: str = "#",
        prompts: Sequence[Path] = (),
    ) -> DigitsResult:
        self._check()
        self.digits.clear()
        if prompts:
            await self.play(prompts, stop_on_dtmf=True)
        loop = asyncio.get_running_loop()
        collector = DigitCollector(max_digits, timeout, inter_digit_timeout or timeout, terminators)
        collector.start(loop.time(), "".join(self.digits))
        self.digits.clear()
        while not collector.done:
            await self.wait_until(
                lambda: bool(self.digits) or self.ended,
                max(0.0, collector.deadline() - loop.time()),
            )
            self._check()
            now = loop.time()
            while self.digits and not collector.done:
                collector.feed(self.digits.pop(0), now)
            collector.tick(now)
        assert collector.done is not None
        return DigitsResult(collector.digits, collector.done)

    async def record(
        self, path: Path, *, max_length: float, beep: bool = True, stop_on_dtmf: bool = True
    ) -> RecordResult:
        if beep:
            await self.play([beep_file()])
        self.digits.clear()
        key, fut = await self._command_done("rec", "record", path=str(path), mix=False)
        stopped_by: Literal["dtmf", "max_length", "hangup", "stop"] = "max_length"
        await self.wait_until(
            lambda: self.ended or (stop_on_dtmf and bool(self.digits)), max_length
        )
        if self.ended:
            stopped_by = "hangup"
        elif self.digits:
            stopped_by = "dtmf"
        if not self.ended:
            self.send("stop_record", rec=key)
        try:
            rec_path, seconds = await fut
        except CallEnded:
            # The worker reports record_done as the call ends; without it (worker lost) the
            # file holds what was written before.
            return RecordResult(Path(path), 0.0, "hangup")
        return RecordResult(Path(rec_path), seconds, stopped_by)

    async def start_recording(self, path: Path) -> None:
        key, fut = await self._command_done("rec", "record", path=str(path), mix=True)
        self.recording = (key, fut)

    async def pause_recording(self) -> None:
        """Silence goes into the whole-call recording until `resume_recording`."""
        if self.recording is not None and not self.ended:
            self.send("pause_record", rec=self.recording[0])

    async def resume_recording(self) -> None:
        if self.recording is not None and not self.ended:
            self.send("resume_record", rec=self.recording[0])

    async def stop_recording(self) -> RecordResult | None:
        if self.recording is None:
            return None
        key, fut = self.recording
        self.recording = None
        if not self.ended:
            self.send("stop_record", rec=key)
        try:
            rec_path, seconds = await fut
        except CallEnded:
            return None
        return RecordResult(Path(rec_path), seconds, "hangup" if self.ended else "stop")

    # -- conference rooms (flexvoice.conference decides; the worker mixes) ------------------
    @property
    def media_worker(self) -> str:
        """Where this leg's audio is mixed: legs in one room must share it."""
        return f"worker {self.worker.index}"

    async def conf_join(self, room: str, muted: bool) -> None:
        self._check()
        self.send("conf_join", room=room, muted=muted)

    async def wait_ended(self) -> None:
        await self.wait_until(lambda: self.ended, None)

    async def conf_mute(self, muted: bool) -> None:
        if not self.ended:
            self.send("conf_mute", muted=muted)

    async def conf_leave(self) -> None:
        if not self.ended:
            self.send("conf_leave")

    async def dial(
        self,
        targets: Sequence[str],
        *,
        ring_timeout: float,
        caller_id: str | None = None,
        bridge: bool = True,
    ) -> DialResult:
        from flexvoice.sip.pool import NoFreeSlot

        self._check()
        attempts: dict[str, DialAttempt] = {}
        legs: dict[str, SipLeg] = {}
        for target in targets:
            self.dialled += 1
            try:
                uri = self.pool.target_uri(target)
                leg = self.pool.originate(
                    uri,
                    caller_id or (self.caller if self.direction == "inbound" else None),
                    near=self if bridge else None,
                    call_id=f"{self.call_id}:out{self.dialled}",
                )
            except NoFreeSlot as exc:
                attempts[target] = DialAttempt(target, "failed", 503, exc.reason)
                continue
            leg.account = self.account
            leg.observer = self.observer
            legs[target] = leg
        pending = list(legs.values())
        answered = await self.wait_until(
            lambda: (
                self.ended
                or any(leg.answered for leg in pending)
                or all(leg.ended for leg in pending)
            ),
            ring_timeout,
            others=pending,
        )
        winner_target = next((t for t, leg in legs.items() if leg.answered), None)
        for target, leg in legs.items():
            if target == winner_target:
                continue
            if not leg.ended:
                # Ring timeout, the caller left, or another target answered first: CANCEL.
                timed_out = not answered
                leg.cause = "ring_timeout" if timed_out else "canceled"
                await leg.hangup(487, "ring timeout" if timed_out else "answered elsewhere")
                outcome: DialOutcome = "no-answer" if timed_out and not self.ended else "canceled"
                reason = "ring_timeout" if timed_out else "answered_elsewhere"
                attempts[target] = DialAttempt(target, outcome, leg.final_status or 487, reason)
            else:
                status = leg.final_status or 500
                attempts[target] = DialAttempt(
                    target, outcome_for(status), status, leg.final_reason
                )
        ordered = [attempts[t] for t in targets if t in attempts]
        if self.ended:
            if winner_target:
                await legs[winner_target].hangup()
            self._check()
        if winner_target is None:
            return DialResult(ordered)
        winner = legs[winner_target]
        ordered.append(DialAttempt(winner_target, "completed", 200, "OK"))
        if bridge:
            if not self.answered:
                await self.answer()
            self.send("bridge", other=winner.worker_call)
            self.bridged_to = winner
        return DialResult(ordered, answered=winner, answered_target=winner_target)

    async def wait_bridge_end(self) -> str:
        partner = self.bridged_to
        if partner is None:
            self._check()
            return "callee"
        await self.wait_until(lambda: self.ended or partner.ended, None, others=[partner])
        self.bridged_to = None
        if self.ended:
            await partner.hangup()
            self._check()
        return "callee"

    async def redirect(self, target: str) -> None:
        self._check()
        self.cause = "redirected"
        self.send("redirect", target=self.pool.target_uri(target))
        await self.wait_until(lambda: self.ended, HANGUP_WAIT)

    async def transfer(self, target: str) -> None:
        self._check()
        self.cause = "transferred"  # what the leg's end will say once the transferee took it
        self.transfer_error = None
        self.send("transfer", target=self.pool.target_uri(target))
        await self.wait_until(lambda: self.ended or self.transfer_error is not None, 30.0)
        if not self.ended:
            self.cause = ""
            why = self.transfer_error or "no final NOTIFY within 30 s"
            raise RuntimeError(f"transfer to {target} failed: {why}")

    async def hangup(self, sip_status: int = 200, reason: str = "normal") -> None:
        if self.ended:
            return
        try:
            self.send("hangup", code=sip_status, reason=reason)
        except ConnectionError:
            return  # the worker is gone; its exit ends this leg
        await self.wait_until(lambda: self.ended, HANGUP_WAIT)


_beep: Path | None = None


def beep_file() -> Path:
    """A 0.3 s 1 kHz beep at 8 kHz, written once into the temp folder (no prompt needed)."""
    global _beep
    if _beep is None or not _beep.exists():
        import math
        import struct
        import tempfile
        import wave

        path = Path(tempfile.gettempdir()) / "flexvoice-beep-8k.wav"
        frames = b"".join(
            struct.pack("<h", int(8000 * math.sin(2 * math.pi * 1000 * i / 8000)))
            for i in range(2400)
        )
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(frames)
        _beep = path
    return _beep

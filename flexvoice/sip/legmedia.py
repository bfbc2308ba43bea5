"""What a leg does with media and how it waits: prompts, digits, recordings on the worker,
and the waiting every command of a leg shares (an event of the leg, or of the legs it
waits with, wakes it). `SipLeg` (flexvoice.sip.leg) is the rest: the leg's life and tree."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from flexvoice.callcontrol import CallEnded, DigitsResult, PlayResult, RecordResult
from flexvoice.digitcollector import DigitCollector
from flexvoice.legstate import LegMachine
from flexvoice.sip.beep import beep_file

_ids = itertools.count(1)


class LegMedia:
    """The media half of a leg; the leg supplies `send`, `ended`, `_check` and `machine`."""

    machine: LegMachine
    digits: list[str]
    recording: tuple[str, asyncio.Future[tuple[str, float]]] | None
    _waiters: list[asyncio.Future[None]]
    _done: dict[str, asyncio.Future[Any]]  # play/rec id -> its end
    _last_digit: str | None

    def __init__(self) -> None:
        self.digits = []
        self.recording = None
        self._waiters = []
        self._done = {}
        self._last_digit = None
        self._talk: tuple[float, float | None] = (
            0.0,
            None,
        )  # (talking time so far, since when it talks: monotonic)

    def talk_heard(self, talking: bool, seconds: float) -> None:
        """The worker's `talk` event: this leg starts or stops speaking in its room."""
        self._talk = (seconds, time.monotonic() if talking else None)

    def talk_time(self) -> tuple[float, bool]:
        seconds, since = self._talk
        if since is None:
            return seconds, False
        return seconds + time.monotonic() - since, True

    @property
    def ended(self) -> bool:
        return self.machine.ended

    def send(self, t: str, **fields: Any) -> None:
        raise NotImplementedError

    def _check(self) -> None:
        if self.ended:
            raise CallEnded(self.machine.ended_by or "caller", self.machine.final_status)

    def _finish(self, key: str, value: Any) -> None:
        fut = self._done.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_result(value)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait_until(
        self, done: Callable[[], bool], timeout: float | None, *, others: Sequence[LegMedia] = ()
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
            # Absolute, as the worker's folder may differ; not resolved: realpath costs a
            # system call per folder of the path, on the loop, for every prompt of every call
            # (3 % of the loop's work per call at 200 CPS), and the worker's open follows links.
            files=[os.path.abspath(p) for p in prompts],
            loop=loop,
            stop_on_dtmf=stop_on_dtmf,
        )
        stopped = await fut
        if stopped == "hangup":  # the worker reports the end of the prompt before the call's
            raise CallEnded(self.machine.ended_by or "caller")
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

    async def start_recording(self, path: Path, second: Path | None = None) -> None:
        parts: dict[str, Any] = {"path2": str(second)} if second is not None else {}
        key, fut = await self._command_done("rec", "record", path=str(path), mix=True, **parts)
        self.recording = (key, fut)

    async def pause_recording(self) -> None:
        """Silence goes into the whole-call recording until `resume_recording`."""
        if self.recording is not None and not self.ended:
            self.send("pause_record", rec=self.recording[0])

    async def resume_recording(self) -> None:
        if self.recording is not None and not self.ended:
            self.send("resume_record", rec=self.recording[0])

    # -- conference rooms (flexvoice.conference decides; the worker mixes) ------------------
    async def wait_ended(self) -> None:
        await self.wait_until(lambda: self.ended, None)

    async def conf_join(self, room: str, muted: bool) -> None:
        self._check()
        self.send("conf_join", room=room, muted=muted)

    async def conf_mute(self, muted: bool) -> None:
        if not self.ended:
            self.send("conf_mute", muted=muted)

    async def conf_leave(self) -> None:
        if not self.ended:
            self.send("conf_leave")

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

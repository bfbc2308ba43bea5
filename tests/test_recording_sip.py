"""Recordings through real SIP: sipp sends real speech (`g711a.pcap`, 4.7 s of A-law over 7 s)
to pjsua2 workers, and the WAV files they write are read back sample by sample.

Whole-call recordings hold both parties (mixed, or one per channel), match the call's length
within a second, leave a silent gap where paused; a voicemail ends on '#'; a worker killed
mid-recording (dual channel) leaves a playable recording (both halves' headers repaired, then
joined) that is listed after the worker restarted."""

from __future__ import annotations

import array
import asyncio
import os
import random
import signal
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from flexvoice.flows.deps import FlowDeps
from flexvoice.flows.runtime import FlowRuntime
from flexvoice.recordings.service import RecordingService
from flexvoice.recordings.store import RecordingRow, RecordingStore
from flexvoice.recordings.wav import channel_paths
from flexvoice.sip.leg import SipLeg
from flexvoice.sip.pool import PoolSettings, WorkerPool
from flexvoice.storage.sqlite import connect
from tests.conftest import REPO, free_port_range
from tests.fakeleg import Sink
from tests.sipptool import Uas, run_uac_async

pytestmark = pytest.mark.sip

RATE = 8000
SPEECH_RMS = 300  # sipp's speech decodes to an RMS of 1,600-2,600; line silence to ~8


def samples(path: Path) -> array.array[int]:
    with wave.open(str(path)) as audio:
        assert (audio.getframerate(), audio.getsampwidth(), audio.getnchannels()) == (RATE, 2, 1)
        data = array.array("h")
        data.frombytes(audio.readframes(audio.getnframes()))
    return data


def stereo(path: Path) -> tuple[array.array[int], array.array[int]]:
    """A dual-channel recording's left and right channels."""
    with wave.open(str(path)) as audio:
        assert (audio.getframerate(), audio.getsampwidth(), audio.getnchannels()) == (RATE, 2, 2)
        data = array.array("h")
        data.frombytes(audio.readframes(audio.getnframes()))
    return data[0::2], data[1::2]


def rms(data: array.array[int], start: float, end: float) -> float:
    window = data[int(start * RATE) : int(end * RATE)]
    assert len(window) > 0, (start, end, len(data) / RATE)
    return float((sum(x * x for x in window) / len(window)) ** 0.5)


def longest_zero_run(data: array.array[int]) -> float:
    best = run = 0
    for x in data:
        run = run + 1 if x == 0 else 0
        best = max(best, run)
    return best / RATE


class Node:
    def __init__(self, pool: WorkerPool, service: RecordingService, sink: Sink):
        self.pool = pool
        self.service = service
        self.sink = sink
        self.legs: list[SipLeg] = []
        self.done: list[str] = []

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.pool.settings.base_port}"

    async def settle(self, timeout: float = 15) -> None:
        """Until every call ended and every recording is closed."""
        for _ in range(int(timeout / 0.05)):
            legs_done = self.done and all(leg.ended for leg in self.legs)
            if legs_done and not self.service.live and not self.service.tasks:
                return
            await asyncio.sleep(0.05)

    def rows(self) -> list[RecordingRow]:
        return self.service.store.list("acme")


Handler = Callable[[SipLeg, Node], Awaitable[str]]
Factory = Callable[..., Awaitable[Node]]


@pytest.fixture
async def rec_node(tmp_path: Path) -> AsyncIterator[Factory]:
    pools: list[WorkerPool] = []
    conns = []

    async def make(
        handler: Handler | None = None,
        flow: str | None = None,
        trunk: Uas | None = None,
        restart_backoff: float = 1.0,
    ) -> Node:
        sink = Sink()
        conn = connect(tmp_path / "flexvoice.db")
        conns.append(conn)
        service = RecordingService(RecordingStore(conn), tmp_path / "recordings", usage_sink=sink)
        flows = tmp_path / "flows"
        flows.mkdir(exist_ok=True)
        if flow is not None:
            (flows / "rec.yaml").write_text(flow)
        deps = FlowDeps(
            usage_sink=sink,
            recordings=service,
            recordings_dir=tmp_path / "recordings",
            tts_cache_dir=tmp_path / "tts",
        )
        runtime = FlowRuntime(flows, REPO / "ivr_prompts", deps)
        assert not [p for p in runtime.scan() if p.severity == "error"]
        node: Node

        async def on_incoming(leg: SipLeg) -> None:
            node.legs.append(leg)
            leg.account = "acme"
            if handler is not None:
                node.done.append(await handler(leg, node))
            else:
                node.done.append(await runtime.start_call(leg, "rec", account="acme"))

        settings = PoolSettings(
            count=1,
            base_port=free_port_range(1),
            rtp_base=random.randrange(30000, 50000, 2),
            trunk=trunk.uri_host if trunk else None,
            restart_backoff=restart_backoff,
        )
        pool = WorkerPool(settings, on_incoming)
        await pool.start()
        pools.append(pool)
        node = Node(pool, service, sink)
        return node

    yield make
    for pool in pools:
        await pool.stop(grace=0)
    for conn in conns:
        conn.close()


DIAL_RECORDED = """\
flow: rec
start: desk
steps:
  desk:
    dial: {targets: ["+3226009999"], ring_timeout: 10s, record: true}
"""


async def test_a_recorded_dial_holds_both_parties_for_the_length_of_the_call(
    rec_node: Factory, tmp_path: Path
) -> None:
    # The callee talks from its answer on; the caller stays quiet 7.5 s, then talks.
    callee = Uas("uas_talk.xml", free_port_range(1), calls=1)
    try:
        node = await rec_node(flow=DIAL_RECORDED, trunk=callee)
        result = await run_uac_async("uac_talk_late.xml", node.target, "+3225551001", hold_ms=7000)
        await node.settle()
    finally:
        callee.stop()
    assert result.successful == 1, result.output
    [row] = node.rows()
    assert (row.kind, row.status, row.note) == ("call", "completed", None)
    caller = node.legs[0]
    assert caller.answered_at is not None and caller.ended_at is not None
    talked = (caller.ended_at - caller.answered_at).total_seconds()
    assert row.duration_seconds is not None
    assert abs(row.duration_seconds - talked) < 1.0, (row.duration_seconds, talked)
    audio = samples(tmp_path / "recordings" / row.path)
    assert abs(len(audio) / RATE - row.duration_seconds) < 0.01
    assert rms(audio, 2.0, 4.0) > SPEECH_RMS  # the callee's speech (1.5-7 s)
    assert rms(audio, 10.0, 13.0) > SPEECH_RMS  # the caller's (9-14.5 s), the callee done
    assert row.sha256 and row.size_bytes == 44 + 2 * len(audio)
    [usage] = [e for e in node.sink.events if e["kind"] == "recording"]
    assert usage["id"] == row.id and usage["call_id"] == caller.call_id
    assert (usage["started_at"], usage["ended_at"]) == (row.started_at, row.ended_at)


async def test_a_dual_channel_dial_puts_each_party_on_its_own_channel(
    rec_node: Factory, tmp_path: Path
) -> None:
    # As above: the callee talks from its answer on, the caller from 9 s on.
    callee = Uas("uas_talk.xml", free_port_range(1), calls=1)
    try:
        dual = DIAL_RECORDED.replace("record: true}", "record: true, recording_channels: dual}")
        node = await rec_node(flow=dual, trunk=callee)
        result = await run_uac_async("uac_talk_late.xml", node.target, "+3225551001", hold_ms=7000)
        await node.settle()
    finally:
        callee.stop()
    assert result.successful == 1, result.output
    [row] = node.rows()
    assert (row.status, row.channels, row.note) == ("completed", 2, None)
    path = tmp_path / "recordings" / row.path
    left, right = stereo(path)
    assert row.duration_seconds is not None
    assert abs(len(left) / RATE - row.duration_seconds) < 0.01
    # The caller's own channel (left) and what it heard (right), each with its party alone.
    assert rms(right, 2.0, 4.0) > SPEECH_RMS and rms(left, 2.0, 4.0) < 50
    assert rms(left, 10.0, 13.0) > SPEECH_RMS and rms(right, 10.0, 13.0) < 50
    assert row.size_bytes == 44 + 4 * len(left)
    assert not [p for p in channel_paths(path) if p.exists()]  # the halves were joined


async def pause_in_the_middle(leg: SipLeg, node: Node) -> str:
    await leg.answer()
    await node.service.start(leg, "acme")
    await asyncio.sleep(2.5)
    await node.service.pause(leg.call_id)
    await asyncio.sleep(2.0)
    await node.service.resume(leg.call_id)
    await leg.wait_until(lambda: leg.ended, 30)  # the caller hangs up; the recording closes
    return "ended"


async def test_a_paused_recording_keeps_the_calls_length_with_a_silent_gap(
    rec_node: Factory, tmp_path: Path
) -> None:
    node = await rec_node(handler=pause_in_the_middle)
    # Speech from 1.5 s to 7 s after the answer; the recording is paused from 2.5 s to 4.5 s.
    result = await run_uac_async("uac_talk.xml", node.target, "+3225551001", hold_ms=7500)
    await node.settle()
    assert result.successful == 1, result.output
    [row] = node.rows()
    assert row.status == "completed" and row.duration_seconds is not None
    assert 6.5 <= row.duration_seconds <= 8.0, row.duration_seconds  # the whole call
    audio = samples(tmp_path / "recordings" / row.path)
    assert rms(audio, 1.7, 2.4) > SPEECH_RMS
    # Silence, sample for sample, where paused: speech never holds 0 for long.
    assert rms(audio, 2.7, 4.3) == 0.0
    assert 1.7 <= longest_zero_run(audio) <= 2.3, longest_zero_run(audio)
    assert rms(audio, 5.0, 6.5) > SPEECH_RMS


VOICEMAIL = """\
flow: rec
start: message
steps:
  message:
    record: {max_length: 20s, then: bye}
  bye:
    hangup: {}
"""


async def test_a_voicemail_ends_on_pound_and_is_billed_once(
    rec_node: Factory, tmp_path: Path
) -> None:
    node = await rec_node(flow=VOICEMAIL)
    result = await run_uac_async("uac_voicemail.xml", node.target, "+3225551001")
    await node.settle()
    assert result.successful == 1, result.output
    [row] = node.rows()
    assert (row.kind, row.status) == ("message", "completed")
    assert row.duration_seconds is not None
    # '#' 4.8 s after the answer, less the beep: far from the 20 s maximum.
    assert 3.0 <= row.duration_seconds <= 6.0, row.duration_seconds
    audio = samples(tmp_path / "recordings" / row.path)
    assert rms(audio, 2.0, 3.5) > SPEECH_RMS  # speech from 2.3 s after the answer
    assert [e["id"] for e in node.sink.events if e["kind"] == "recording"] == [row.id]


async def hold_recorded(leg: SipLeg, node: Node) -> str:
    await leg.answer()
    await node.service.start(leg, "acme", channels=2)
    await leg.wait_until(lambda: leg.ended, 30)
    return "ended"


async def test_a_worker_killed_mid_dual_recording_leaves_a_playable_listed_recording(
    rec_node: Factory, tmp_path: Path
) -> None:
    node = await rec_node(handler=hold_recorded, restart_backoff=0.2)
    worker = node.pool.workers[0]
    caller = asyncio.ensure_future(
        run_uac_async("uac_talk.xml", node.target, "+3225551001", hold_ms=15000, timeout=20)
    )
    for _ in range(200):
        if node.service.live:
            break
        await asyncio.sleep(0.05)
    assert node.service.live, "the call was never recorded"
    await asyncio.sleep(3.0)
    assert worker.proc is not None
    old_pid = worker.proc.pid
    os.kill(old_pid, signal.SIGKILL)
    await node.settle()
    [row] = node.rows()
    assert row.status == "completed", row
    assert row.note and "header repaired" in row.note, row.note
    assert row.duration_seconds is not None and 2.0 <= row.duration_seconds <= 4.0
    path = tmp_path / "recordings" / row.path
    # Both halves' headers repaired, then joined: wave reads the stereo file.
    left, right = stereo(path)
    assert abs(len(left) / RATE - row.duration_seconds) < 0.01
    assert rms(left, 1.7, 2.4) > SPEECH_RMS  # the caller's speech
    assert rms(right, 1.7, 2.4) < 50  # nothing was played to it
    assert [e["id"] for e in node.sink.events if e["kind"] == "recording"] == [row.id]
    # The worker comes back; the recording is still there, unchanged.
    for _ in range(200):
        if worker.up and worker.proc is not None and worker.proc.pid != old_pid:
            break
        await asyncio.sleep(0.05)
    assert worker.up
    assert node.service.store.get(row.id) == row
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller

"""One media worker process driven over its own protocol (no pool): the wake-up path, and the
RTP ports a worker binds. Sizing and the port layout of a node are checked without SIP."""

from __future__ import annotations

import itertools
import json
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flexvoice.config import load_config
from flexvoice.errors import ProblemList, UserError
from flexvoice.sip.addresses import (
    RTP_PORTS_PER_WORKER,
    Machine,
    auto_worker_count,
    port_room,
    rtp_ports,
    worker_addresses,
    worker_count,
)
from tests.conftest import free_port_range
from tests.poolkit import tone
from tests.sipptool import Uas

REPO = Path(__file__).resolve().parent.parent
# Far longer than any test waits: a command is acted on only if it wakes the worker.
TEN_MINUTES_MS = 600_000


class WorkerProc:
    """`python -m flexvoice.sip.worker` with its events collected from standard output."""

    def __init__(self, port: int, rtp_port: int, idle_ms: int = TEN_MINUTES_MS):
        self.port = port
        self.rtp_port = rtp_port
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flexvoice.sip.worker",
                "--index",
                "0",
                "--port",
                str(port),
                "--rtp-port",
                str(rtp_port),
                "--rtp-ports",
                str(RTP_PORTS_PER_WORKER),
                "--idle-ms",
                str(idle_ms),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=REPO,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.seen: list[dict[str, Any]] = []
        self.calls: dict[str, str] = {}  # name in the test -> call id on the worker

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def send(self, t: str, **fields: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"t": t, **fields}) + "\n").encode())
        self.proc.stdin.flush()

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 20) -> dict:
        for seen in self.seen:
            if pred(seen):
                return seen
        while True:
            try:
                event = self.events.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no such event; seen {self.seen}") from None
            self.seen.append(event)
            if pred(event):
                return event

    def wait_state(self, call: str, state: str) -> None:
        self.wait_for(lambda e: e.get("call") == call and e.get("state") == state)

    def udp_ports(self) -> set[int]:
        out = subprocess.run(["ss", "-uanpH"], capture_output=True, text=True).stdout
        ports = set()
        for line in out.splitlines():
            fields = line.split()
            # Bound, unconnected sockets (the reader's wake-up socket is connected).
            if f"pid={self.proc.pid}," in line and fields[4].endswith(":*"):
                ports.add(int(fields[3].rsplit(":", 1)[1]))
        return ports

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def worker() -> Iterator[WorkerProc]:
    port = free_port_range(1)
    rtp = free_port_range(RTP_PORTS_PER_WORKER)
    w = WorkerProc(port, rtp)
    w.wait_for(lambda e: e["t"] == "ready")
    yield w
    w.stop()


@pytest.mark.sip
def test_an_idle_worker_acts_on_commands_while_blocked_in_pjsip(
    worker: WorkerProc, tmp_path: Path
) -> None:
    # The worker waits up to ten minutes in PJSIP when it has no call: each command below
    # is carried out within the test's time only because the reader thread wakes it.
    prompt = tone(tmp_path / "tone.wav", 0.5)
    callee = Uas("uas_answer.xml", free_port_range(1), calls=1)
    try:
        worker.send("originate", call="c1", uri=f"sip:+3226001@{callee.uri_host}", caller_id="")
        worker.wait_state("c1", "confirmed")
        worker.send("play", call="c1", play="p1", files=[str(prompt)], loop=False)
        done = worker.wait_for(lambda e: e["t"] == "play_done")
        assert done["stopped"] == "eof"
        worker.send("hangup", call="c1", code=200)
        worker.wait_state("c1", "disconnected")
    finally:
        callee.stop()


@pytest.mark.sip
def test_an_idle_worker_stops_on_shutdown_and_when_its_input_closes(worker: WorkerProc) -> None:
    worker.send("shutdown")
    assert worker.proc.wait(20) == 0
    other = WorkerProc(free_port_range(1), free_port_range(RTP_PORTS_PER_WORKER))
    try:
        other.wait_for(lambda e: e["t"] == "ready")
        assert other.proc.stdin is not None
        other.proc.stdin.close()  # the control plane is gone
        assert other.proc.wait(20) == 0
    finally:
        other.stop()


@pytest.mark.sip
def test_a_worker_binds_its_calls_media_inside_its_own_port_range(worker: WorkerProc) -> None:
    callee = Uas("uas_answer.xml", free_port_range(1), calls=8)
    try:
        # Eight calls, four at a time: slots are reused and media ports come and go.
        for batch in ("a", "b"):
            calls = [f"{batch}{n}" for n in range(4)]
            for call in calls:
                connect(worker, call, f"sip:1@{callee.uri_host}")
            media = worker.udp_ports() - {worker.port}
            assert len(media) == 8  # RTP + RTCP for each of the four calls
            assert media <= set(rtp_ports(worker.rtp_port, 0)), media
            for call in calls:
                worker.send("hangup", call=worker.calls[call], code=200)
            for call in calls:
                worker.wait_state(worker.calls[call], "disconnected")
    finally:
        callee.stop()


ENDS = ("confirmed", "disconnected")


def connect(worker: WorkerProc, call: str, uri: str) -> None:
    """Originate and wait for the answer. pjsua frees a call's slot a moment after reporting
    its end: the worker tries an originate in that gap again itself, so even a slot reused at
    once connects on the first command."""
    worker.send("originate", call=call, uri=uri, caller_id="")
    event = worker.wait_for(
        lambda e: e.get("call") == call and e.get("state") in ENDS  # type: ignore[misc]
    )
    assert event["state"] == "confirmed", event
    worker.calls[call] = call


@pytest.mark.sip
def test_a_command_crossing_its_calls_end_is_told_from_a_bad_call_id(worker: WorkerProc) -> None:
    callee = Uas("uas_answer.xml", free_port_range(1), calls=1)
    try:
        connect(worker, "c1", f"sip:1@{callee.uri_host}")
        worker.send("hangup", call="c1", code=200)
        worker.wait_state("c1", "disconnected")
        # The call tree ends a leg its worker ended already: nothing to answer.
        worker.send("hangup", call="c1", code=200)
        # A flow that plays to a caller who just hung up: an error marked `ended`.
        worker.send("play", call="c1", play="p1", files=["/nonexistent.wav"], loop=False)
        worker.send("play", call="never-was", play="p2", files=["/nonexistent.wav"], loop=False)
        first = worker.wait_for(lambda e: e["t"] == "error")
        assert (first["cmd"], first["message"], first.get("ended")) == ("play", "call ended", True)
        second = worker.wait_for(lambda e: e["t"] == "error" and e is not first)
        assert second["call"] == "never-was" and second["message"] == "no such call on this worker"
        assert "ended" not in second
    finally:
        callee.stop()


# -- layout and sizing (no SIP) ---------------------------------------------------------------


def test_worker_rtp_ranges_are_adjacent_and_disjoint() -> None:
    ranges = [rtp_ports(20000, n) for n in range(250)]
    assert ranges[0] == range(20000, 20016)
    assert ranges[249] == range(23984, 24000)
    for a, b in itertools.pairwise(ranges):
        assert a.stop == b.start


def test_auto_sizing_takes_the_lower_of_cpu_and_memory() -> None:
    gib = 2**30
    # CPU-bound: 2 cores carry 800 calls (200 workers) when memory is plentiful.
    assert auto_worker_count(Machine(cores=2, memory=24 * gib)) == 200
    assert auto_worker_count(Machine(cores=8, memory=64 * gib)) == 800
    # Memory-bound: 2 GiB leaves 1 GiB for workers.
    assert auto_worker_count(Machine(cores=8, memory=2 * gib)) == 42
    # A container limited to half a core still gets workers, never none.
    assert auto_worker_count(Machine(cores=0.5, memory=24 * gib)) == 50
    assert auto_worker_count(Machine(cores=0.001, memory=10 * 2**20)) == 1


def write(tmp_path: Path, workers: str) -> Path:
    path = tmp_path / "flexvoice.yaml"
    path.write_text(f"sip:\n  edge: {{port: 5060}}\n  workers: {workers}\n")
    return path


def test_count_auto_is_sized_from_the_machine_and_the_port_room(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "{count: auto, base_port: 5070, rtp_base: 20000}"), {})
    assert worker_count(cfg, Machine(cores=2, memory=24 * 2**30)) == 200
    addresses = worker_addresses(cfg, Machine(cores=2, memory=24 * 2**30))
    assert [a.port for a in addresses] == list(range(5070, 5270))
    # Few RTP ports left above rtp_base: as many workers as fit.
    cfg = load_config(write(tmp_path, "{count: auto, base_port: 5070, rtp_base: 65000}"), {})
    assert worker_count(cfg, Machine(cores=64, memory=512 * 2**30)) == 536 // 16
    assert port_room(5070, 65000) == 33
    # The environment override takes the word too.
    cfg = load_config(write(tmp_path, "{}"), {"FLEXVOICE_SIP__WORKERS__COUNT": "auto"})
    assert cfg.sip.workers.count == "auto"


@pytest.mark.parametrize(
    ("workers", "message"),
    [
        ("{count: 400, base_port: 5070, rtp_base: 60000}", "need RTP ports 60000-66399"),
        ("{count: 300, base_port: 65400, rtp_base: 20000}", "need SIP ports 65400-65699"),
        ("{count: 100, base_port: 20100, rtp_base: 20000}", "overlap their RTP ports"),
        ("{count: 10, base_port: 5055, rtp_base: 20000}", "the edge's port 5060"),
    ],
)
def test_a_port_layout_that_does_not_fit_is_refused_naming_the_keys(
    tmp_path: Path, workers: str, message: str
) -> None:
    cfg = load_config(write(tmp_path, workers), {})
    with pytest.raises(UserError, match=message) as err:
        worker_count(cfg)
    assert "sip.workers." in str(err.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "sip.workers.count: must be at least 1 (got 0)"),
        ("2001", "sip.workers.count: must be at most 2000 (got 2001)"),
        ("lots", "sip.workers.count: must be a whole number of workers or 'auto' (got 'lots')"),
    ],
)
def test_worker_count_is_a_number_or_auto(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ProblemList) as err:
        load_config(write(tmp_path, f"{{count: {value}}}"), {})
    assert [p.message for p in err.value.problems] == [message]


def test_the_default_layout_fits(tmp_path: Path) -> None:
    cfg = load_config(REPO / "flexvoice.yaml", {})
    assert worker_count(cfg) == cfg.sip.workers.count


@pytest.mark.sip
def test_two_identical_messages_get_their_own_answers(worker: WorkerProc) -> None:
    """Each SIP MESSAGE's final answer is matched to its own request, not by (To, body): the
    carrier answers the first late with 200 and the second at once with 404."""
    carrier = Uas("uas_message_first_late.xml", free_port_range(1), calls=2)
    try:
        uri = f"sip:+32475123456@{carrier.uri_host}"
        for msg_id in ("m1", "m2"):
            worker.send("message", id=msg_id, uri=uri, body="Your code is ready", **{"from": ""})
        first = worker.wait_for(lambda e: e["t"] == "message_status")
        second = worker.wait_for(lambda e: e["t"] == "message_status" and e is not first)
        assert (first["id"], first["code"]) == ("m2", 404)
        assert (second["id"], second["code"]) == ("m1", 200)
        assert first["sip_call_id"] and second["sip_call_id"]
        assert first["sip_call_id"] != second["sip_call_id"]
    finally:
        carrier.stop()

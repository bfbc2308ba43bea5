"""The media worker's parts without pjsua2 (flexvoice.sip.wakes, dispatch, workerio, wavfile,
eventout):
fast checks, no SIP. The worker process itself is driven in test_sip_worker.py."""

from __future__ import annotations

import io
import socket
from pathlib import Path

from flexvoice.sip import wakes
from flexvoice.sip.addresses import edge_source
from flexvoice.sip.dispatch import EndedCalls, no_call_answer
from flexvoice.sip.eventout import EventOut
from flexvoice.sip.protocol import Message
from flexvoice.sip.wavfile import prompt_seconds, silence_file, wav_closed, wav_seconds
from flexvoice.sip.workerio import WAKE, read_commands
from tests.poolkit import tone


def test_wav_length_comes_from_the_header_and_unreadable_files_count_as_zero(
    tmp_path: Path,
) -> None:
    assert wav_seconds(str(tone(tmp_path / "t.wav", 1.5))) == 1.5
    (tmp_path / "junk.wav").write_bytes(b"not a wav file at all")
    assert wav_seconds(str(tmp_path / "junk.wav")) == 0.0
    assert wav_seconds(str(tmp_path / "missing.wav")) == 0.0
    assert wav_seconds(str(silence_file())) == 1.0


def test_a_prompts_length_is_read_once_and_again_when_the_file_changes(tmp_path: Path) -> None:
    path = tone(tmp_path / "p.wav", 1.0)
    assert prompt_seconds(str(path)) == 1.0
    tone(path, 2.5)  # replaced: another size (and time)
    assert prompt_seconds(str(path)) == 2.5
    assert prompt_seconds(str(tmp_path / "missing.wav")) is None
    assert prompt_seconds(str(tmp_path)) is None  # a folder is no prompt


def test_a_recording_is_closed_once_its_riff_size_is_filled_in(tmp_path: Path) -> None:
    done = tone(tmp_path / "done.wav", 0.1)
    assert wav_closed(str(done))
    open_file = tmp_path / "open.wav"
    open_file.write_bytes(b"RIFF\0\0\0\0WAVE" + b"\0" * 32)  # as PJSIP writes it while open
    assert not wav_closed(str(open_file))
    assert wav_closed(str(tmp_path / "gone.wav"))  # nothing to wait for


def test_a_worker_sleeps_long_unless_something_is_due() -> None:
    now = 100.0
    assert wakes.wait_ms(now, calls=False, play_ends=[]) == wakes.IDLE_POLL_MS
    assert wakes.wait_ms(now, calls=False, play_ends=[], idle_ms=7) == 7
    assert wakes.wait_ms(now, calls=False, play_ends=[], graveyard=True) == 250
    assert wakes.wait_ms(now, calls=True, play_ends=[None, None]) == wakes.CALL_POLL_MS
    # The prompt that ends first decides; one overdue is watched every frame.
    assert wakes.wait_ms(now, calls=True, play_ends=[100.75, 100.25, None]) == 250
    assert wakes.wait_ms(now, calls=True, play_ends=[99.0]) == wakes.ACTIVE_POLL_MS
    assert wakes.wait_ms(now, calls=True, play_ends=[], closing_files=True) == 20
    # An originate waiting for pjsua to free a slot beats everything.
    assert wakes.wait_ms(now, calls=True, play_ends=[], retrying=True) == wakes.RETRY_POLL_MS


def test_commands_crossing_a_calls_end_are_told_from_unknown_calls() -> None:
    ended = EndedCalls(keep=2)
    for call in ("a", "b", "c"):
        ended.add(call)
    assert "a" not in ended and "b" in ended and "c" in ended and len(ended) == 2
    assert no_call_answer("hangup", "c", ended) is None
    assert no_call_answer("play", "c", ended) == {
        "call": "c",
        "cmd": "play",
        "message": "call ended",
        "ended": True,
    }
    for call in ("a", None):  # forgotten, or no call named at all
        answer = no_call_answer("hangup", call, ended)
        assert answer == {"call": call, "cmd": "hangup", "message": "no such call on this worker"}


def test_the_edge_source_is_the_proxy_uris_host_and_port() -> None:
    assert edge_source("sip:127.0.0.1:5060;lr") == "127.0.0.1:5060"
    assert edge_source(None) is None


def test_each_command_read_is_queued_then_wakes_the_worker_and_the_end_is_none() -> None:
    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind(("127.0.0.1", 0))
    target.settimeout(2)
    got: list[Message | None] = []
    lines = b'{"t": "answer", "call": "c1"}\n\nnot json\n{"t": "shutdown"}\n'
    read_commands(got.append, target.getsockname(), io.BytesIO(lines))
    assert [m.t if m else None for m in got] == ["answer", "shutdown", None]
    assert got[0] is not None and got[0].call == "c1"
    wakes_seen = [target.recv(64) for _ in range(3)]  # two commands and the end
    assert wakes_seen == [WAKE] * 3
    target.close()


def test_no_wake_up_is_sent_when_the_worker_says_it_needs_none_but_always_at_the_end() -> None:
    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind(("127.0.0.1", 0))
    target.settimeout(0.5)
    got: list[Message | None] = []
    asked = iter([False, True])  # busy for the first command, asleep for the second
    lines = b'{"t": "answer", "call": "c1"}\n{"t": "hangup", "call": "c1"}\n'
    read_commands(got.append, target.getsockname(), io.BytesIO(lines), lambda: next(asked))
    assert [m.t if m else None for m in got] == ["answer", "hangup", None]
    assert [target.recv(64) for _ in range(2)] == [WAKE, WAKE]  # the second command, the end
    try:
        extra = target.recv(64)
    except TimeoutError:
        extra = b""
    assert extra == b""
    target.close()


class CountingStream(io.BytesIO):
    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.writes = 0
        self.fail = fail

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.fail:
            raise BrokenPipeError(32, "Broken pipe")
        self.writes += 1
        return super().write(data)


def test_a_turns_events_go_out_together_in_order_and_only_when_flushed() -> None:
    stream = CountingStream()
    out = EventOut(stream)
    out.flush()  # nothing queued: nothing written
    out.pending += [b"1\n", b"2\n"]
    assert stream.getvalue() == b""  # queued, not written before the turn ends
    out.flush()
    out.pending.append(b"3\n")
    out.flush()
    assert (stream.getvalue(), stream.writes, out.pending) == (b"1\n2\n3\n", 2, [])


def test_events_for_a_control_plane_that_is_gone_are_dropped_quietly() -> None:
    stream = CountingStream(fail=True)
    out = EventOut(stream)
    out.pending.append(b"1\n")
    out.flush()  # no exception: the worker must still hang up and exit
    assert out.broken and out.pending == []
    stream.fail = False
    out.pending.append(b"2\n")
    out.flush()  # not tried again: a line cut in two would corrupt the protocol
    assert (stream.writes, out.pending) == (0, [])

"""Recordings without SIP: WAV header repair (PCM and A-law, as PJSIP writes them), a
recording's life in the service (close, repair at start, webhooks, retention), the accounts
CLI's retention setting."""

from __future__ import annotations

import asyncio
import struct
import threading
import wave
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from flexvoice.accounts import create_account, recording_retention_days
from flexvoice.calls import CallRegistry
from flexvoice.recordings.service import RecordingConflict, RecordingService
from flexvoice.recordings.store import RecordingStore
from flexvoice.recordings.wav import (
    WavError,
    channel_paths,
    read_info,
    repair,
    write_silence,
)
from flexvoice.storage.engine import Connection
from flexvoice.storage.sqlite import connect
from tests.conftest import run_cli
from tests.fakeleg import Script, Sink, harness


def pjsip_open_wav(path: Path, data: bytes, fmt: str = "pcm") -> None:
    """A WAV as PJSIP's writer leaves it when killed: sizes 0, samples after the header."""
    if fmt == "pcm":
        fmt_chunk = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
        head = b"RIFF" + b"\0\0\0\0" + b"WAVE" + fmt_chunk + b"data" + b"\0\0\0\0"
        assert len(head) == 44
    else:  # A-law: fmt (16 bytes) + fact chunk, 56 bytes, data size at 52
        fmt_chunk = b"fmt " + struct.pack("<IHHIIHH", 16, 6, 1, 8000, 8000, 1, 8)
        fact = b"fact" + struct.pack("<II", 4, 0)
        head = b"RIFF" + b"\0\0\0\0" + b"WAVE" + fmt_chunk + fact + b"data" + b"\0\0\0\0"
        assert len(head) == 56
    path.write_bytes(head + data)


def test_repair_fills_the_pcm_sizes_from_the_length_and_cuts_a_half_sample(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.wav"
    pjsip_open_wav(path, b"\x01\x02" * 12000 + b"\x03")  # 1.5 s and a stray byte
    assert read_info(path).open
    info = repair(path)
    raw = path.read_bytes()
    assert struct.unpack_from("<I", raw, 4)[0] == 36 + 24000
    assert struct.unpack_from("<I", raw, 40)[0] == 24000
    assert len(raw) == 44 + 24000 and info.duration == 1.5
    with wave.open(str(path)) as audio:
        assert audio.getnframes() == 12000
    assert repair(path) == info  # a consistent file is left alone


def test_repair_handles_the_56_byte_alaw_header(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    pjsip_open_wav(path, b"\xd5" * 8000, fmt="alaw")
    info = repair(path)
    raw = path.read_bytes()
    assert struct.unpack_from("<I", raw, 52)[0] == 8000
    assert struct.unpack_from("<I", raw, 4)[0] == 48 + 8000
    assert (info.format, info.data_offset, info.duration) == ("alaw", 56, 1.0)


def test_a_file_that_is_not_a_wav_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(b"hello" * 20)
    with pytest.raises(WavError):
        read_info(path)


class Hooks:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str, dict[str, Any]]] = []

    def enqueue(self, account: str, url: str, event: str, payload: dict[str, Any]) -> None:
        self.sent.append((account, url, event, payload))


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.t


def service(
    tmp_path: Path, store: Connection | None = None, **kw: Any
) -> tuple[RecordingService, Sink, Hooks, Clock]:
    """A recording service on `store` (the store_db fixture: both engines), else a file."""
    sink, hooks, clock = Sink(), Hooks(), Clock()
    svc = RecordingService(
        RecordingStore(store if store is not None else connect(tmp_path / "db.sqlite")),
        tmp_path / "recordings",
        usage_sink=sink,
        webhooks=hooks,
        callback_for=lambda call_id: "https://example.com/hook",
        price_usage=lambda account, event: (60, Decimal("0.0025"), None),
        clock=clock,
        **kw,
    )
    return svc, sink, hooks, clock


def test_a_closed_recording_is_measured_billed_once_and_announced(
    tmp_path: Path, store_db: Connection
) -> None:
    svc, sink, hooks, _ = service(tmp_path, store_db)
    row, path = svc.open("acme", "CA1", "message")
    assert path == tmp_path / "recordings" / "acme" / f"{row.id}.wav"
    write_silence(path, 2.5)
    done = svc.close(row.id)
    assert (done.status, done.duration_seconds, done.price_eur) == ("completed", 2.5, "0.0025")
    assert done.ended_at == "2026-03-02T10:00:02.500+00:00"
    assert svc.close(row.id) == done  # closing twice changes nothing
    assert [e["id"] for e in sink.events] == [row.id]
    [(account, url, event, payload)] = hooks.sent
    assert (account, url, event) == ("acme", "https://example.com/hook", "recording.completed")
    assert payload["recording"]["sha256"] == done.sha256


def test_no_audio_fails_the_recording_without_billing(tmp_path: Path, store_db: Connection) -> None:
    svc, sink, hooks, _ = service(tmp_path, store_db)
    row, _path = svc.open("acme", "CA1", "call")
    done = svc.close(row.id)
    assert done.status == "failed" and done.note and "no audio" in done.note
    assert sink.events == []
    assert [h[2] for h in hooks.sent] == ["recording.failed"]


def test_recordings_left_open_by_a_dead_node_are_repaired_at_start(
    tmp_path: Path, store_db: Connection
) -> None:
    svc, _sink, _, _ = service(tmp_path, store_db)
    row, path = svc.open("acme", "CA1", "call")
    pjsip_open_wav(path, b"\x10\x00" * 16000)  # 2 s, then the node died
    again, sink2, _, _ = service(tmp_path, store_db)  # the next start, same database
    [fixed] = again.repair_open()
    assert fixed.id == row.id and fixed.status == "completed"
    assert fixed.duration_seconds == 2.0 and fixed.note and "header repaired" in fixed.note
    with wave.open(str(path)) as audio:
        assert audio.getnframes() == 16000
    assert [e["id"] for e in sink2.events] == [row.id]
    assert again.repair_open() == []


def test_a_dual_channel_recording_left_open_is_repaired_and_joined_at_start(
    tmp_path: Path,
) -> None:
    svc, _sink, _, _ = service(tmp_path)
    row, path = svc.open("acme", "CA1", "call", channels=2)
    left, right = channel_paths(path)
    pjsip_open_wav(left, struct.pack("<4h", 1, 2, 3, 4) * 4000)  # 2 s, then the node died
    pjsip_open_wav(right, struct.pack("<2h", -5, -6) * 4000 + b"\x07")  # 1 s and a half sample
    again, sink2, _, _ = service(tmp_path)
    [fixed] = again.repair_open()
    assert (fixed.status, fixed.channels, fixed.duration_seconds) == ("completed", 2, 2.0)
    assert fixed.note and "header repaired" in fixed.note
    with wave.open(str(path)) as audio:
        assert (audio.getnchannels(), audio.getnframes()) == (2, 16000)
        frames = audio.readframes(4)
        tail = (audio.setpos(15999), audio.readframes(1))[1]
    # left, right, left, right ...; the shorter right half is padded with silence
    assert struct.unpack("<8h", frames) == (1, -5, 2, -6, 3, -5, 4, -6)
    assert struct.unpack("<2h", tail) == (4, 0)
    assert not left.exists() and not right.exists()
    assert [e["id"] for e in sink2.events] == [row.id]


def test_a_dual_channel_half_never_written_is_silence(tmp_path: Path) -> None:
    svc, _sink, _, _ = service(tmp_path)
    row, path = svc.open("acme", "CA1", "call", channels=2)
    left, right = channel_paths(path)
    write_silence(left, 1.0)
    right.write_bytes(b"")  # killed before PJSIP's first write
    done = svc.close(row.id)
    assert (done.status, done.channels, done.duration_seconds) == ("completed", 2, 1.0)
    with wave.open(str(path)) as audio:
        assert (audio.getnchannels(), audio.getnframes()) == (2, 8000)


def test_retention_deletes_old_audio_keeps_rows_and_usage(
    tmp_path: Path, store_db: Connection
) -> None:
    days = {"acme": 30}
    svc, sink, _, clock = service(tmp_path, store_db, retention_days_for=days.get)
    kept = {}
    for account in ("acme", "other"):
        row, path = svc.open(account, f"CA-{account}", "message")
        write_silence(path, 1)
        kept[account] = (svc.close(row.id), path)
    clock.t += timedelta(days=31)
    assert svc.apply_retention() == 1  # acme keeps 30 days, other the default 90
    acme, acme_path = kept["acme"]
    gone = svc.store.get(acme.id)
    assert gone is not None and gone.status == "deleted" and not acme_path.exists()
    assert gone.note and "retention" in gone.note and gone.price_eur == "0.0025"
    assert kept["other"][1].exists()
    assert len(sink.events) == 2  # the usage stays billed
    clock.t += timedelta(days=60)
    assert svc.apply_retention() == 1 and not kept["other"][1].exists()


def test_a_running_recording_cannot_be_deleted(tmp_path: Path) -> None:
    svc, _, _, _ = service(tmp_path)
    row, _path = svc.open("acme", "CA1", "call")
    with pytest.raises(RecordingConflict, match="stop it first"):
        svc.delete(row)


@pytest.mark.process
def test_accounts_set_recording_retention(tmp_path: Path) -> None:
    db = tmp_path / "flexvoice.db"
    conn = connect(db)
    create_account(conn, "shop", "flexio-payu")
    done = run_cli("accounts", "set", "shop", "--recording-retention", "30d", "--db", str(db))
    assert done.returncode == 0, done.stderr
    assert "kept 30 days" in done.stdout
    assert recording_retention_days(conn, "shop") == 30
    bad = run_cli("accounts", "set", "shop", "--recording-retention", "1 month", "--db", str(db))
    assert bad.returncode != 0 and "'30d'" in bad.stderr and "Traceback" not in bad.stderr


async def test_a_voicemail_steps_own_callback_gets_the_signed_webhook(tmp_path: Path) -> None:
    flow = """\
flow: vm
start: message
steps:
  message:
    record: {max_length: 30s, status_callback: "https://crm.example.com/voicemail"}
"""
    h = harness(tmp_path, {"vm": flow})
    svc, sink, hooks, _ = service(tmp_path)
    h.runtime.deps.recordings = svc
    svc.callback_for = lambda call_id: None  # an inbound call has no status_callback
    await h.call("vm", h.leg(Script(message_seconds=12)), account="acme")
    [(account, url, event, payload)] = hooks.sent
    assert (account, url, event) == (
        "acme",
        "https://crm.example.com/voicemail",
        "recording.completed",
    )
    assert payload["recording"]["duration_seconds"] == 12.0
    assert [e["kind"] for e in sink.events] == ["recording"]


def test_a_recording_of_no_account_stays_in_the_folder_and_bills_nobody(tmp_path: Path) -> None:
    svc, sink, _, _ = service(tmp_path)
    row, path = svc.open("", "CA1", "message")
    assert path == tmp_path / "recordings" / "_unassigned" / f"{row.id}.wav"
    write_silence(path, 1)
    assert svc.close(row.id).status == "completed"
    assert sink.events == []


LEGACY_TABLE = """CREATE TABLE recordings (id TEXT PRIMARY KEY, account TEXT NOT NULL,
    call_id TEXT NOT NULL, path TEXT NOT NULL, started_at TEXT, duration_seconds REAL,
    created_at TEXT NOT NULL)"""


def tables(conn: Any) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


@pytest.mark.parametrize("calls_first", [True, False])
def test_the_call_registrys_old_recordings_table_is_moved_then_dropped(
    tmp_path: Path, calls_first: bool
) -> None:
    # A database from before issue 13: the call registry's first migration made `recordings`.
    conn = connect(tmp_path / "old.db")
    CallRegistry(conn)
    conn.execute(LEGACY_TABLE)
    conn.execute(
        "INSERT INTO recordings VALUES ('RE1', 'acme', 'CA1', 'var/recordings/CA1-ask.wav',"
        " '2026-11-30T10:00:00', 4.5, '2026-11-30T10:00:05')"
    )
    openers = [lambda: CallRegistry(conn), lambda: RecordingStore(conn)]
    for open_component in openers if calls_first else openers[::-1]:
        open_component()
    assert "recordings" not in tables(conn) and "call_recordings" in tables(conn)
    [row] = RecordingStore(conn).list("acme", call_id="CA1")
    assert (row.id, row.status, row.kind, row.duration_seconds) == (
        "RE1",
        "completed",
        "message",
        4.5,
    )
    assert row.note and "moved" in row.note
    # A new database never gets the table, whichever component opens it first.
    fresh = connect(tmp_path / "new.db")
    for open_component in (lambda: RecordingStore(fresh), lambda: CallRegistry(fresh)):
        open_component()
    assert "recordings" not in tables(fresh)


def test_closing_on_a_running_node_reads_the_file_off_the_event_loop(tmp_path: Path) -> None:
    svc, sink, _, _ = service(tmp_path)
    row, path = svc.open("acme", "CA1", "call", channels=2)
    left, right = channel_paths(path)
    write_silence(left, 2.0)
    write_silence(right, 2.0)
    threads: list[int] = []
    examine = svc._examine

    def watched(*args: Any) -> Any:
        threads.append(threading.get_ident())
        return examine(*args)

    svc._examine = watched  # type: ignore[method-assign]

    async def close() -> Any:
        return threading.get_ident(), await svc.close_off_loop(row.id)

    loop_thread, done = asyncio.run(close())
    assert threads and threads[0] != loop_thread  # joining and hashing ran in a thread
    assert (done.status, done.channels, done.duration_seconds) == ("completed", 2, 2.0)
    assert done.sha256 and done.size_bytes == path.stat().st_size
    assert [e["id"] for e in sink.events] == [row.id]

"""WAV headers as the media worker needs them: a prompt's length (to know when it ends without
polling every frame), whether PJSIP's WAV writer has closed a recording (it fills in the
sizes only then), and a second of silence to loop while a recording is paused."""

from __future__ import annotations

import os
import stat
import tempfile
import wave
from pathlib import Path


def wav_seconds(path: str) -> float:
    """A WAV file's length from its header (any encoding); 0 when unreadable, which makes the
    worker watch for the prompt's end every frame from the start."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return 0.0
    pos, byte_rate, data = 12, 0, 0
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if chunk == b"fmt " and pos + 20 <= len(head):
            byte_rate = int.from_bytes(head[pos + 16 : pos + 20], "little")
        elif chunk == b"data":
            data = size
            break
        pos += 8 + size + (size & 1)
    return data / byte_rate if byte_rate and head[:4] == b"RIFF" else 0.0


_PROMPTS: dict[str, tuple[int, int, float]] = {}  # path -> (mtime_ns, size, seconds)


def prompt_seconds(path: str) -> float | None:
    """A prompt file's length (wav_seconds), None when it is not a file. A prompt played on
    every call is read once: one stat a play after that (the file changed: read again)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    known = _PROMPTS.get(path)
    if known is not None and known[0] == st.st_mtime_ns and known[1] == st.st_size:
        return known[2]
    if len(_PROMPTS) > 1000:  # prompts are few; a flow naming endless files must not grow it
        _PROMPTS.clear()
    seconds = wav_seconds(path)
    _PROMPTS[path] = (st.st_mtime_ns, st.st_size, seconds)
    return seconds


def wav_closed(path: str) -> bool:
    """True once the WAV writer filled in the RIFF size (it is 0 while the file is open)."""
    try:
        with open(path, "rb") as f:
            header = f.read(8)
    except OSError:
        return True  # nothing to wait for
    return len(header) == 8 and header[4:8] != b"\0\0\0\0"


_silence: Path | None = None


def silence_file() -> Path:
    """One second of 8 kHz silence (looped while a recording is paused)."""
    global _silence
    if _silence is None or not _silence.exists():
        path = Path(tempfile.gettempdir()) / f"flexvoice-silence-8k-{os.getpid()}.wav"
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(b"\0\0" * 8000)
        _silence = path
    return _silence

"""The beep before a recording: a 0.3 s 1 kHz tone at 8 kHz, written once (no prompt needed)."""

from __future__ import annotations

import math
import struct
import tempfile
import wave
from pathlib import Path

_beep: Path | None = None


def beep_file() -> Path:
    global _beep
    if _beep is None or not _beep.exists():
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

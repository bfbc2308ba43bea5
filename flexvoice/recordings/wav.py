"""WAV headers as PJSIP's recorder writes them, and their repair after a crash.

PJSIP 2.15.1's WAV writer puts a header with both size fields 0 at the start and fills them
only when the recorder is closed: PCM has a 44-byte header (RIFF size at byte 4, data size at
byte 40); A-law and mu-law have a `fact` chunk too, 56 bytes (data size at 52). A worker that
dies mid-recording leaves a file whose header says "0 bytes" while the samples are on disk.
`repair` rewrites the two sizes from the file's length (whole samples only), so the file plays
up to its last flushed second. The chunks are walked rather than assumed at fixed offsets.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

FORMATS = {1: "pcm", 6: "alaw", 7: "mulaw"}


class WavError(ValueError):
    """Not a WAV file this engine wrote."""


@dataclass(frozen=True)
class WavInfo:
    format: str  # pcm | alaw | mulaw
    channels: int
    rate: int
    sample_bytes: int  # per sample per channel
    data_offset: int  # where the samples start
    data_size: int  # bytes of samples the header declares
    riff_size: int
    file_size: int

    @property
    def frame_bytes(self) -> int:
        return self.sample_bytes * self.channels

    @property
    def duration(self) -> float:
        return self.data_size / (self.frame_bytes * self.rate) if self.rate else 0.0

    @property
    def open(self) -> bool:
        """The header still says 0 bytes: the writer never closed the file."""
        return self.data_size == 0 and self.riff_size == 0

    @property
    def on_disk_data(self) -> int:
        """Whole frames actually present after the header."""
        size = max(0, self.file_size - self.data_offset)
        return size - size % self.frame_bytes


def read_info(path: Path) -> WavInfo:
    with path.open("rb") as f:
        head = f.read(512)
        size = f.seek(0, 2)
    return parse(head, size)


def parse(head: bytes, file_size: int) -> WavInfo:
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise WavError("not a RIFF/WAVE file")
    riff_size = struct.unpack_from("<I", head, 4)[0]
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if chunk == b"fmt ":
            if pos + 8 + 16 > len(head):
                break
            tag, channels, rate, _byte_rate, _align, bits = struct.unpack_from(
                "<HHIIHH", head, pos + 8
            )
            fmt = (tag, channels, rate, bits)
        elif chunk == b"data":
            if fmt is None:
                raise WavError("data chunk before fmt chunk")
            tag, channels, rate, bits = fmt
            if tag not in FORMATS or channels < 1 or rate < 1 or bits not in (8, 16):
                raise WavError(f"unsupported WAV format (tag {tag}, {bits} bits)")
            return WavInfo(
                FORMATS[tag], channels, rate, bits // 8, pos + 8, size, riff_size, file_size
            )
        pos += 8 + size + (size & 1)
    raise WavError("no data chunk in the first 512 bytes")


def repair(path: Path) -> WavInfo:
    """Make the header's sizes match the samples on disk (whole frames; a trailing partial
    frame is cut off). Returns the repaired header; does nothing to a consistent file."""
    info = read_info(path)
    data = info.on_disk_data
    if info.data_size == data and info.riff_size == info.data_offset - 8 + data:
        return info
    with path.open("r+b") as f:
        f.truncate(info.data_offset + data)
        f.seek(4)
        f.write(struct.pack("<I", info.data_offset - 8 + data))
        f.seek(info.data_offset - 4)
        f.write(struct.pack("<I", data))
    return read_info(path)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def write_silence(path: Path, seconds: float, rate: int = 8000) -> None:
    """A closed 16-bit PCM WAV of `seconds` of silence: what a simulated leg "records"."""
    import wave

    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(seconds * rate))

"""WAV headers as PJSIP's recorder writes them, and their repair after a crash.

PJSIP 2.15.1's WAV writer puts a header with both size fields 0 at the start and fills them
only when the recorder is closed: PCM has a 44-byte header (RIFF size at byte 4, data size at
byte 40); A-law and mu-law have a `fact` chunk too, 56 bytes (data size at 52). A worker that
dies mid-recording leaves a file whose header says "0 bytes" while the samples are on disk.
`repair` rewrites the two sizes from the file's length (whole samples only), so the file plays
up to its last flushed second. The chunks are walked rather than assumed at fixed offsets.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import sys
import wave
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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


def channel_paths(path: Path) -> tuple[Path, Path]:
    """Where the two mono halves of a dual-channel recording are written until joined."""
    return path.with_name(f"{path.stem}.ch1.wav"), path.with_name(f"{path.stem}.ch2.wav")


def interleave(left: Path, right: Path, out: Path, block: int = 1 << 16) -> WavInfo:
    """Join two mono 16-bit PCM files (either may be missing: silence) into one stereo file,
    left channel first; the shorter is padded with silence. Written beside `out` and renamed
    onto it, so a crash midway leaves the halves, not half a file."""
    infos = {p: read_info(p) for p in (left, right) if p.exists()}
    if not infos:
        raise FileNotFoundError(left)
    for p, info in infos.items():
        if info.format != "pcm" or info.sample_bytes != 2 or info.channels != 1:
            raise WavError(f"{p.name}: not 16-bit mono PCM ({info.format}, {info.channels} ch)")
    rates = {info.rate for info in infos.values()}
    if len(rates) != 1:
        raise WavError(f"the two channels differ in sample rate: {sorted(rates)}")
    frames = max(info.data_size for info in infos.values()) // 2
    tmp = out.with_name(out.name + ".joining")
    with contextlib.ExitStack() as stack:
        readers: list[tuple[BinaryIO | None, int]] = []
        for p in (left, right):
            if p in infos:
                half: BinaryIO = stack.enter_context(p.open("rb"))
                half.seek(infos[p].data_offset)
                readers.append((half, infos[p].data_size))
            else:
                readers.append((None, 0))
        writer = stack.enter_context(wave.open(str(tmp), "wb"))
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(rates.pop())
        done = 0
        while done < frames:
            n = min(block, frames - done)
            both = array("h", bytes(4 * n))
            for channel, (f, size) in enumerate(readers):
                have = max(0, min(n, size // 2 - done))
                if f is not None and have:
                    samples = array("h", f.read(2 * have))
                    samples.extend(array("h", bytes(2 * (n - len(samples)))))
                    both[channel::2] = samples
            if sys.byteorder != "little":
                both.byteswap()
            writer.writeframes(both.tobytes())
            done += n
    os.replace(tmp, out)
    return read_info(out)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def write_silence(path: Path, seconds: float, rate: int = 8000) -> None:
    """A closed 16-bit PCM WAV of `seconds` of silence: what a simulated leg "records"."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(seconds * rate))

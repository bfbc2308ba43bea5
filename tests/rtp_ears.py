"""Ears for conference tests: UDP sockets standing in for participants' media ports (the
sipp caller's SDP names them), which decode the A-law RTP a worker sends there and can speak
sipp's own speech capture back (symmetric RTP)."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.sipptool import free_udp_pair


def alaw_to_linear(byte: int) -> int:
    """G.711 A-law to 16-bit linear (ITU-T G.711)."""
    a = byte ^ 0x55
    seg = (a & 0x70) >> 4
    value = (a & 0x0F) << 4
    value += 8 if seg == 0 else 0x108
    if seg > 1:
        value <<= seg - 1
    return value if a & 0x80 else -value


ALAW = [alaw_to_linear(b) for b in range(256)]


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux


def arrival(ancillary: list[tuple[int, int, bytes]]) -> float:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanos = struct.unpack("qq", data[:16])
            return seconds + nanos / 1e9
    return time.time()


class Ear:
    """A UDP socket standing in for a participant's media port: keeps what arrives."""

    def __init__(self) -> None:
        self.port = free_udp_pair()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.setblocking(False)
        # The kernel stamps each datagram on arrival (wall clock): delays measured from these
        # do not depend on how often a loaded test gets round to draining the socket.
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.packets: list[tuple[float, bytes]] = []  # (monotonic time drained, payload)
        self.arrived: list[float] = []  # kernel arrival time of each packet (time.time())
        self.source: tuple[str, int] | None = None  # where the worker sends from
        self.sent: list[float] = []  # when speak() sent each packet (time.time())

    def drain(self) -> None:
        while True:
            try:
                data, ancillary, _flags, self.source = self.sock.recvmsg(2048, 64)
            except BlockingIOError:
                return
            if len(data) > 12 and data[1] & 0x7F == 8:  # PCMA
                self.packets.append((time.monotonic(), data[12:]))
                self.arrived.append(arrival(ancillary))

    def rms(self, start: float, end: float) -> float:
        values = [ALAW[b] for t, p in self.packets if start <= t < end for b in p]
        return (sum(v * v for v in values) / len(values)) ** 0.5 if values else 0.0

    def close(self) -> None:
        self.sock.close()


async def until(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


def pcap_payloads(path: str = "/usr/share/sip-tester/g711a.pcap") -> list[bytes]:
    """The A-law RTP payloads of sipp's capture (Ethernet + IPv4 + UDP + RTP: 54 bytes)."""
    data = Path(path).read_bytes()
    pos, out = 24, []
    while pos + 16 <= len(data):
        length = int.from_bytes(data[pos + 8 : pos + 12], "little")
        packet = data[pos + 16 : pos + 16 + length]
        pos += 16 + length
        out.append(packet[54:])
    return out


async def speak(
    ear: Ear, seconds: float, listeners: Sequence[Ear] = (), payloads: Sequence[bytes] = ()
) -> float:
    """Send the capture's speech (or `payloads`, 30 ms each) as RTP from the ear's socket to
    where the worker sends from (symmetric RTP), draining the listeners meanwhile; returns
    when it started."""
    await until(lambda: (ear.drain(), ear.source)[1] is not None)
    payloads = payloads or pcap_payloads()
    started = time.monotonic()
    seq, stamp, i = 1, 0, 0
    while time.monotonic() < started + seconds:
        payload = payloads[i % len(payloads)]
        header = bytes([0x80, 8]) + seq.to_bytes(2, "big") + stamp.to_bytes(4, "big")
        ear.sock.sendto(header + b"\x12\x34\x56\x78" + payload, ear.source)
        ear.sent.append(time.time())
        seq, stamp, i = (seq + 1) & 0xFFFF, (stamp + len(payload)) & 0xFFFFFFFF, i + 1
        for one in (ear, *listeners):
            one.drain()
        await asyncio.sleep(max(0.0, started + i * 0.03 - time.monotonic()))
    return started


async def listen_for(ears: Sequence[Ear], seconds: float) -> None:
    """Keep what reaches the ears for a while (the room's last packets after a speaker)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for ear in ears:
            ear.drain()
        await asyncio.sleep(0.02)


async def leave(callers: Sequence[asyncio.Future[Any]], ears: Sequence[Ear]) -> None:
    """The sipp participants stopped, their ears closed."""
    for caller in callers:
        caller.cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    for ear in ears:
        ear.close()


def assert_all_heard(ears: Sequence[Ear], start: float, end: float, why: str = "") -> None:
    """ears[0] spoke: every other ear heard it (speech decodes to RMS 1,600-2,600), and the
    speaker did not hear itself."""
    assert ears[0].rms(start, end) < 50, (why, "the speaker heard itself")
    for n, ear in enumerate(ears[1:], start=1):
        heard = ear.rms(start, end)
        assert heard > 300, (why, n, heard, len(ear.packets))

"""The running edge under hostile input: RFC 4475 torture messages and a flood of OPTIONS."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from pathlib import Path

import pytest

from flexvoice.sip.edge import sip_ping
from tests.edge_support import (
    RFC4475,
    edge_config,
    first_reply,
    run_uac,
    running_edge,
    send_raw,
    start_uas,
    torture_messages,
)

pytestmark = [pytest.mark.edge, pytest.mark.xdist_group("edge")]

# Framing cases the RFC asks to be tried over a stream transport as well.
TCP_TOO = {"clerr.dat", "ncl.dat", "mcl01.dat"}


async def test_rfc4475_torture_messages_leave_the_edge_up(tmp_path: Path) -> None:
    rows = torture_messages()
    assert len(rows) == 50  # 49 of the RFC + its stray test.dat
    cfg, workers, state = edge_config(workers=1)
    uas = await start_uas(tmp_path, workers[0].port, name="w0")
    try:
        async with running_edge(cfg, workers, state) as edge:
            port = cfg.sip.edge.port
            replies: dict[str, str | None] = {}
            for name, kind in rows:
                data = (RFC4475 / name).read_bytes()
                # From a non-local address, so the whole request path (pike, sanity, ACL
                # classification, routing) runs on it.
                replies[name] = await asyncio.to_thread(first_reply, data, port, "127.0.0.4")
                if name in TCP_TOO:
                    await asyncio.to_thread(send_raw, data, port, "127.0.0.1", "127.0.0.4", True)
                assert edge.up, f"Kamailio died on {name}"
                assert await asyncio.to_thread(sip_ping, "127.0.0.1", port, 3), (
                    f"no answer to OPTIONS after {name}"
                )
                reply = replies[name] or ""
                assert not reply.startswith("SIP/2.0 2"), f"{name} ({kind}) accepted: {reply}"
                if kind in ("INVALID", "EXTRA"):
                    # Rejected (400, 505), dropped, or refused on other grounds where the RFC
                    # allows a liberal parse; never a success.
                    assert reply == "" or reply.split()[1][0] in "45", (name, reply)
            counters = await edge.counters()
            # Nothing was forwarded anywhere: not to the workers, not to the foreign hosts the
            # messages name (no open relay), and no stray reply (bcast.dat) left the edge.
            assert counters["core:fwd_requests"] == 0, counters
            assert counters["core:fwd_replies"] == 0, counters
            assert [ln for ln in uas.lines() if ln.startswith("call ")] == []
            assert all(t.load == 0 for t in await edge.targets())
            # A few spot checks of what the edge answered.
            assert replies["scalar02.dat"] == "SIP/2.0 400 CSeq number is illegal"
            assert replies["mismatch01.dat"] is not None and " 400 " in replies["mismatch01.dat"]
            assert replies["zeromf.dat"] == "SIP/2.0 483 Too Many Hops"
            assert replies["regaut01.dat"] == "SIP/2.0 405 Method Not Allowed"
            assert replies["badvers.dat"] is None  # unparsable Via: dropped, not 2xx'd
    finally:
        await uas.stop()


def flood(port: int, src: str, rate: int, seconds: float) -> tuple[int, int]:
    """Send `rate` OPTIONS/s from `src` for `seconds`; (sent, replies received)."""
    sent = received = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((src, 0))
        s.setblocking(False)
        local = s.getsockname()[1]
        start = time.monotonic()
        while (now := time.monotonic()) - start < seconds:
            due = int((now - start) * rate)
            while sent < due:
                tag = os.urandom(4).hex()
                msg = (
                    f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP {src}:{local};branch=z9hG4bK{tag}{sent}\r\n"
                    "Max-Forwards: 70\r\n"
                    f"From: <sip:flood@{src}>;tag={tag}\r\n"
                    f"To: <sip:127.0.0.1:{port}>\r\n"
                    f"Call-ID: flood-{tag}-{sent}\r\n"
                    f"CSeq: {sent + 1} OPTIONS\r\n"
                    "Content-Length: 0\r\n\r\n"
                )
                with contextlib.suppress(BlockingIOError):
                    s.sendto(msg.encode(), ("127.0.0.1", port))
                sent += 1
            while True:
                try:
                    s.recv(65535)
                    received += 1
                except BlockingIOError:
                    break
            time.sleep(0.002)
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:  # late replies still count against the edge
            try:
                s.recv(65535)
                received += 1
            except BlockingIOError:
                time.sleep(0.01)
    return sent, received


async def test_flood_from_one_address_is_cut_off_while_another_calls(tmp_path: Path) -> None:
    cfg, workers, state = edge_config(workers=1, flood_limit=100)
    uas = await start_uas(tmp_path, workers[0].port, name="w0")
    try:
        async with running_edge(cfg, workers, state) as edge:
            port = cfg.sip.edge.port
            flooding = asyncio.create_task(asyncio.to_thread(flood, port, "127.0.0.2", 1000, 4.0))
            await asyncio.sleep(1.0)  # the flood is on and pike has blocked 127.0.0.2
            lines = await run_uac(
                tmp_path,
                f"127.0.0.1:{port}",
                f"sip:+3225550100@127.0.0.1:{port}",
                src_ip="127.0.0.3",
                hold_ms=200,
            )
            sent, received = await flooding
            assert [ln.split()[0] for ln in lines] == ["answered"], lines
            # 1,000/s against a limit of 100/s per address: most of the flood got nothing.
            assert sent >= 3000, sent
            assert received < sent * 0.15, (sent, received)
            assert edge.up
            assert await asyncio.to_thread(sip_ping, "127.0.0.1", port, 2)
    finally:
        await uas.stop()

"""Who may call through the edge, and where calls go: ACL, outbound to the trunk, dead workers."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from flexvoice.system import free_port
from tests.conftest import free_port_range
from tests.edge_support import (
    SIPP_DIR,
    calls_per_worker,
    edge_config,
    outcomes,
    run_uac,
    running_edge,
    sipp,
    start_uas,
    trunks_file,
    wait_for_state,
)

pytestmark = [pytest.mark.edge, pytest.mark.xdist_group("edge")]


async def test_acl_admits_trunk_addresses_only(tmp_path: Path) -> None:
    cfg, workers, state = edge_config(workers=1, acl=True)
    trunks = trunks_file(
        state,
        "trunks:\n  c:\n    proxy: 127.0.0.1:5999\n    source_addresses: [127.0.0.3]\n",
    )
    uas = await start_uas(tmp_path, workers[0].port, name="w0")
    try:
        async with running_edge(cfg, workers, state, trunks) as edge:
            await wait_for_state(edge, 0, "active")
            port = cfg.sip.edge.port
            target, ruri = f"127.0.0.1:{port}", f"sip:+3225550100@127.0.0.1:{port}"
            stranger = await run_uac(tmp_path, target, ruri, src_ip="127.0.0.2", name="stranger")
            carrier = await run_uac(tmp_path, target, ruri, src_ip="127.0.0.3", name="carrier")
            local = await run_uac(tmp_path, target, ruri, src_ip="127.0.0.1", name="local")
            assert outcomes(stranger) == {"refused 403": 1}, stranger
            assert outcomes(carrier) == {"answered": 1}, carrier
            # The workers' host (here 127.0.0.1) is trusted by address, from any port: PJSIP
            # sends a long request over TCP from a port of its own. Loopback as such is not
            # (test_cluster: workers on 127.0.0.2-3, a request from 127.0.0.1 gets 403).
            assert outcomes(local) == {"answered": 1}, local
            assert calls_per_worker({0: uas.lines()}) == {0: 2}
    finally:
        await uas.stop()


async def test_outbound_from_a_worker_is_relayed_to_the_trunk_only(tmp_path: Path) -> None:
    cfg, workers, state = edge_config(workers=1)
    carrier_port = free_port_range(1)
    trunks = trunks_file(
        state,
        f"trunks:\n  carrier:\n    proxy: 127.0.0.1:{carrier_port}\n"
        "    source_addresses: [127.0.0.5]\n",
    )
    carrier = await start_uas(tmp_path, carrier_port, name="carrier")
    try:
        async with running_edge(cfg, workers, state, trunks):
            port = cfg.sip.edge.port
            target = f"127.0.0.1:{port}"
            to_carrier = f"sip:+3222222222@127.0.0.1:{carrier_port}"
            # A worker (its address is in the dispatcher list) calls out through the
            # edge as its outbound proxy.
            lines = await run_uac(
                tmp_path, target, to_carrier, src_port=workers[0].port, hold_ms=300, name="out"
            )
            assert outcomes(lines) == {"answered": 1}, lines
            got = [ln for ln in carrier.lines() if ln.startswith("call ")]
            assert len(got) == 1
            # The edge put itself in the route: the carrier's BYE will come back through it.
            assert f"127.0.0.1:{port};lr" in got[0], got[0]
            # Not an open relay: the network cannot call the trunk (or anywhere) through us.
            relay = await run_uac(tmp_path, target, to_carrier, src_ip="127.0.0.2", name="relay")
            assert outcomes(relay) == {"refused 403": 1}, relay
            # And a worker cannot call an address that is not a trunk.
            elsewhere = f"sip:+3222222222@127.0.0.1:{free_port()}"
            other = await run_uac(
                tmp_path, target, elsewhere, src_port=workers[0].port, name="other"
            )
            assert outcomes(other) == {"refused 403": 1}, other
            assert len([ln for ln in carrier.lines() if ln.startswith("call ")]) == 1
    finally:
        await carrier.stop()


async def test_dead_worker_is_taken_out_and_back_in(tmp_path: Path) -> None:
    cfg, workers, state = edge_config(workers=2, max_calls=4, worker_timeout="1s")
    uas = {w.index: await start_uas(tmp_path, w.port, name=f"w{w.index}") for w in workers}
    try:
        async with running_edge(cfg, workers, state) as edge:
            port = cfg.sip.edge.port
            target, ruri = f"127.0.0.1:{port}", f"sip:+3225550100@127.0.0.1:{port}"
            for w in workers:
                await wait_for_state(edge, w.index, "active")

            def per_worker() -> dict[int, int]:
                return calls_per_worker({i: u.lines() for i, u in uas.items()})

            # 1. The pool says worker 0 is gone: at once, every call goes to worker 1, and
            #    pings do not bring a disabled worker back.
            edge.set_worker_state(0, False)
            await edge.settled()
            assert {t.index: t.state for t in await edge.targets()} == {0: "disabled", 1: "active"}
            lines = await run_uac(tmp_path, target, ruri, calls=4, hold_ms=300, name="a")
            assert outcomes(lines) == {"answered": 4} and per_worker() == {0: 0, 1: 4}
            await asyncio.sleep(cfg.sip.edge.ping_interval * 2)
            assert (await edge.targets())[0].state == "disabled"
            # ... and back.
            edge.set_worker_state(0, True)
            await edge.settled()
            # Held long enough that all 8 overlap even on a loaded machine: 4 + 4 exactly.
            lines = await run_uac(tmp_path, target, ruri, calls=8, hold_ms=3000, name="b")
            assert outcomes(lines) == {"answered": 8} and per_worker() == {0: 4, 1: 8}

            # 2. Worker 0 dies and nobody tells the edge: calls sent to it fail over to worker 1
            #    after worker_timeout, and the edge takes it out (failover mark, then pings).
            await uas[0].stop()
            lines = await run_uac(tmp_path, target, ruri, calls=2, hold_ms=300, name="c")
            assert outcomes(lines) == {"answered": 2} and per_worker() == {0: 4, 1: 10}
            await wait_for_state(edge, 0, "inactive")

            # 3. It comes back on its port: pings bring it in again.
            uas[0] = await start_uas(tmp_path, workers[0].port, name="w0-again")
            took = await wait_for_state(edge, 0, "active")
            assert took < 10
            lines = await run_uac(tmp_path, target, ruri, calls=8, hold_ms=3000, name="d")
            assert outcomes(lines) == {"answered": 8}
            assert per_worker() == {0: 4, 1: 14}
    finally:
        for u in uas.values():
            await u.stop()


async def test_edge_restart_keeps_worker_states(tmp_path: Path) -> None:
    cfg, workers, state = edge_config(workers=2)
    async with running_edge(cfg, workers, state) as edge:
        edge.set_worker_state(1, False)
        await edge.settled()
        started = time.monotonic()
        await edge.stop()
        assert not edge.up
        await edge.start()
        assert time.monotonic() - started < 15
        assert {t.index: t.state for t in await edge.targets()}[1] == "disabled"


def _request(method: str, carrier: int, worker: int, cseq: int) -> bytes:
    """A worker's INVITE to the carrier, or its CANCEL (same branch: hop by hop)."""
    return (
        f"{method} sip:+3222222222@127.0.0.1:{carrier} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{worker};rport;branch=z9hG4bK-slip-1\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:+3225550100@127.0.0.1>;tag=w1\r\n"
        "To: <sip:+3222222222@127.0.0.1>\r\nCall-ID: slip-1@127.0.0.1\r\n"
        f"CSeq: {cseq} {method}\r\nContact: <sip:w@127.0.0.1:{worker}>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def test_a_cancelled_calls_487_reaches_the_worker_even_when_the_carrier_drops_its_via(
    tmp_path: Path,
) -> None:
    """A carrier that copies its 487's Vias from the (hop-by-hop) CANCEL sends the worker's
    own Via nowhere: relayed as it came, PJSIP drops that 487, its INVITE never ends and keeps
    a call slot the node and the edge count free (the worker then answers callers 486). The
    edge answers a cancelled INVITE itself, from the transaction: the worker's Via is in it."""
    cfg, workers, state = edge_config(workers=1)
    carrier_port = free_port_range(1)
    trunks = trunks_file(
        state, f"trunks:\n  carrier:\n    proxy: 127.0.0.1:{carrier_port}\n"
    )  # fmt: skip
    carrier = await sipp(
        "carrier", tmp_path, "-sf", str(SIPP_DIR / "uas_cancel_via_slip.xml"), "-i",
        "127.0.0.1", "-p", str(carrier_port), "-m", "1", "-timeout", "20s",
    )  # fmt: skip
    worker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        worker.bind(("127.0.0.1", workers[0].port))
        worker.setblocking(False)
        loop = asyncio.get_running_loop()

        async def until(status: str, method: str) -> str:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    data = await asyncio.wait_for(loop.sock_recv(worker, 65535), 1.0)
                except TimeoutError:
                    continue
                text = data.decode(errors="replace")
                if text.startswith(f"SIP/2.0 {status}") and f" {method}\r\n" in text:
                    return text
            raise AssertionError(f"no {status} for the {method} within 5 s")

        async with running_edge(cfg, workers, state, trunks):
            edge = ("127.0.0.1", cfg.sip.edge.port)
            worker.sendto(_request("INVITE", carrier_port, workers[0].port, 1), edge)
            await until("180", "INVITE")
            worker.sendto(_request("CANCEL", carrier_port, workers[0].port, 1), edge)
            await until("200", "CANCEL")
            final = await until("487", "INVITE")
            assert "branch=z9hG4bK-slip-1" in final, final
    finally:
        worker.close()
        await carrier.stop()

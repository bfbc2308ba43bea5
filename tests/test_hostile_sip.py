"""Hostile SIP at a whole node (issue 12): INVITEs a worker cannot read are refused by the
edge before dispatching and leave no slot taken; a worker refuses SIP that does not come
from the edge; a representative part of the generated corpus of malformed INVITEs
(bench/sipfuzz.py; all of it runs in `./run fuzz`) leaves no slot taken and no worker
crashed, and a real call is answered right after it."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import yaml

from bench.sipfuzz import representative, send_corpus
from tests.nodekit import (
    edge_loads,
    edge_node,
    http_port,
    metric,
    start_node,
    stop,
    wait_http,
    wait_workers,
)
from tests.sipptool import run_uac

pytestmark = [pytest.mark.sip, pytest.mark.edge, pytest.mark.xdist_group("sipnode")]


def long_invite(sip_port: int, local_port: int, n: int, length: int = 4096) -> bytes:
    user = "3" * length
    return (
        f"INVITE sip:{user}@127.0.0.1:{sip_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bKlong{n}x{time.time_ns()}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=l{n}\r\n"
        f"To: <sip:{user}@127.0.0.1>\r\nCall-ID: long{n}-{time.time_ns()}\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:a@127.0.0.1:{local_port}>\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def final_answers(sock: socket.socket, wait: float) -> list[str]:
    sock.settimeout(0.2)
    got: list[str] = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            first = sock.recv(65535).split(b"\r\n", 1)[0].decode()
        except TimeoutError:
            continue
        if not first.startswith("SIP/2.0 1"):
            got.append(first)
    return got


def test_long_invites_are_refused_at_the_edge_and_take_no_slot(tmp_path: Path) -> None:
    config, sip_port = edge_node(tmp_path, workers=2)
    proc = start_node(config)
    try:
        wait_http(http_port(config), "/healthz", proc, timeout=60)
        wait_workers(http_port(config), proc, 2)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            local = sock.getsockname()[1]
            for n in range(12):  # the old main: w0 7/4, w1 4/4, then 503 for 150 s
                sock.sendto(long_invite(sip_port, local, n), ("127.0.0.1", sip_port))
            answers = final_answers(sock, 2)
        assert answers == ["SIP/2.0 414 Request-URI Too Long"] * 12, answers
        assert edge_loads(config) == ["0/4", "0/4"]
        result = run_uac("uac_until_bye.xml", f"127.0.0.1:{sip_port}", "+3225551003")
        assert result.successful == 1, result.output
        # A worker reached directly (not through the edge) refuses the INVITE.
        worker_port = int(yaml.safe_load(config.read_text())["sip"]["workers"]["base_port"])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            local = sock.getsockname()[1]
            data = long_invite(worker_port, local, 99, length=12).replace(b"3" * 12, b"+3225551003")
            sock.sendto(data, ("127.0.0.1", worker_port))
            assert final_answers(sock, 2) == ["SIP/2.0 403 Forbidden"]
    finally:
        stop(proc)


def test_fuzz_corpus_subset_leaves_no_slot_taken_and_a_call_works_after(tmp_path: Path) -> None:
    """About 780 malformed INVITEs (every damage to the Request-URI, Via, Call-ID, CSeq,
    Contact, SDP c= and m= lines, and the framing cases) at about 40 a second, the rate two
    workers take (the edge gives a worker at most 20 new calls a second)."""
    config, sip_port = edge_node(tmp_path, workers=2)
    proc = start_node(config)
    port = http_port(config)
    try:
        wait_http(port, "/healthz", proc, timeout=60)
        wait_workers(port, proc, 2)
        report = send_corpus(sip_port, pace=0.025, select=representative)
        assert report.sent > 700
        assert report.server_errors == 0, report.by_status
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and edge_loads(config) != ["0/4", "0/4"]:
            time.sleep(0.5)
        assert edge_loads(config) == ["0/4", "0/4"], "worker slots left taken at the edge"
        assert metric(port, "flexvoice_worker_restarts_total") == 0, "a worker crashed"
        result = run_uac("uac_until_bye.xml", f"127.0.0.1:{sip_port}", "+3225551003")
        assert result.successful == 1, result.output
    finally:
        stop(proc)

"""A whole node with its Kamailio edge and several pjsua2 workers, called by sipp."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
from pathlib import Path

import pytest
import yaml

from tests.conftest import write_node_config
from tests.nodekit import (
    edge_node,
    http_port,
    start_node,
    stop,
    wait_http,
    wait_workers,
    worker_pids,
)
from tests.sipptool import run_uac

pytestmark = [pytest.mark.sip, pytest.mark.edge, pytest.mark.xdist_group("sipnode")]


def test_twenty_simultaneous_calls_then_a_stream_of_short_ones_through_the_edge(
    tmp_path: Path,
) -> None:
    config, sip_port = edge_node(tmp_path, workers=6)
    proc = start_node(config)
    try:
        wait_http(http_port(config), "/healthz", proc, timeout=60)
        wait_workers(http_port(config), proc, 6)
        # 20 callers at once, each hearing the 3 s prompt: 24 slots, at least 5 workers.
        result = run_uac(
            "uac_until_bye.xml", f"127.0.0.1:{sip_port}", "+3225551003",
            calls=20, rate=40, limit=20, timeout=60,
        )  # fmt: skip
        assert result.successful == 20 and result.failed == 0, result.output
        # Then short calls, one ending as the next arrives: the edge fills one worker (20 new
        # calls a second each), every call a prompt. None refused, none cut short: a worker
        # that kept each stopped prompt 2 s ran out of pjsua's 32 players (PJ_ETOOMANY).
        result = run_uac(
            "uac_call.xml", f"127.0.0.1:{sip_port}", "+3225551003",
            calls=200, rate=40, limit=4, hold_ms=50, timeout=60,
        )  # fmt: skip
        assert result.successful == 200 and result.failed == 0, result.output
    finally:
        err = stop(proc)
    routed = re.findall(r"event=call\.routed call_id=CA[0-9a-f]{32} worker=(\d+)", err)
    assert len(routed) == 20  # the first 20 heard their prompt out; the others hung up in it
    workers = {int(w) for w in routed}
    assert len(workers) >= 5, f"calls went to workers {sorted(workers)}"
    assert "PJ_ETOOMANY" not in err


def test_a_killed_worker_is_skipped_by_the_edge_and_comes_back(tmp_path: Path) -> None:
    config, sip_port = edge_node(tmp_path, workers=2)
    proc = start_node(config)
    target = f"127.0.0.1:{sip_port}"
    try:
        wait_http(http_port(config), "/healthz", proc, timeout=60)
        wait_workers(http_port(config), proc, 2)
        pids = worker_pids(proc.pid, config)
        assert sorted(pids) == [0, 1]
        os.kill(pids[0], signal.SIGKILL)
        # At once: every new call goes to worker 1, none is lost to the dead one.
        result = run_uac("uac_until_bye.xml", target, "+3225551003", calls=4, rate=20, limit=4)
        assert result.successful == 4 and result.failed == 0, result.output
        wait_workers(http_port(config), proc, 2)  # restarted
        new_pids = worker_pids(proc.pid, config)
        assert new_pids[0] != pids[0] and new_pids[1] == pids[1]
        # Back in the edge: 8 calls at once need both workers.
        result = run_uac("uac_until_bye.xml", target, "+3225551003", calls=8, rate=40, limit=8)
        assert result.successful == 8 and result.failed == 0, result.output
    finally:
        err = stop(proc)
    assert "event=worker.died worker=0" in err
    assert "event=worker.restarted worker=0" in err
    routed = re.findall(r"event=call\.routed call_id=CA[0-9a-f]{32} worker=(\d+)", err)
    assert routed[:4] == ["1"] * 4
    assert routed[4:].count("0") == 4 and routed[4:].count("1") == 4


def test_fresh_node_plays_the_demo_numbers_prompt(tmp_path: Path) -> None:
    # The repository's own sip/numbers.yaml, flows/ and ivr_prompts/, behind the edge.
    config = write_node_config(tmp_path, workers=2)
    sip_port = int(yaml.safe_load(config.read_text())["sip"]["edge"]["port"])
    proc = start_node(config)
    try:
        wait_http(http_port(config), "/healthz", proc, timeout=60)
        wait_workers(http_port(config), proc, 2)
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        rtp.settimeout(0.2)
        result = run_uac(
            "uac_until_bye.xml", f"127.0.0.1:{sip_port}", "+3225551003",
            keys={"rtp_port": str(rtp.getsockname()[1])},
        )  # fmt: skip
        packets = 0
        with contextlib.suppress(TimeoutError):
            while True:
                rtp.recv(2048)
                packets += 1
        rtp.close()
    finally:
        err = stop(proc)
    assert result.successful == 1, result.output
    assert packets >= 50, f"{packets} RTP packets of the welcome prompt"
    assert "route=prompt" in err

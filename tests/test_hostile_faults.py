"""Stopping and killing a node (issue 12): a signal to the whole process group (what systemd,
`timeout` and Ctrl-C send) stops it cleanly every time, nothing left running and no
traceback; kill -9 of `serve` takes the edge and the workers with it; a stale edge found by
its pid file is stopped by the next `serve`."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.nodekit import (
    edge_node,
    http_port,
    session_processes,
    start_node,
    wait_http,
    wait_workers,
)

pytestmark = [pytest.mark.sip, pytest.mark.edge, pytest.mark.xdist_group("sipnode")]

# The issue asks for 20 in a row of each; the suite runs 3 of each (a node start costs about
# 3 s here) and `FLEXVOICE_STOPS=20` runs the full count.
STOPS = int(os.environ.get("FLEXVOICE_STOPS", "3"))


def kamailios(config_dir: Path) -> list[int]:
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [
        int(line.split()[0])
        for line in out.splitlines()
        if "kamailio" in line and str(config_dir) in line
    ]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_group_signals_stop_the_node_cleanly_every_time(tmp_path: Path, sig: int) -> None:
    config, _sip = edge_node(tmp_path, workers=1)
    for n in range(STOPS):
        proc = start_node(config)
        wait_http(http_port(config), "/healthz", proc, timeout=60)
        wait_workers(http_port(config), proc, 1)
        os.killpg(proc.pid, sig)
        if n % 2:
            time.sleep(0.05)
            os.killpg(proc.pid, sig)  # impatient operators press twice
        _out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err[-3000:]
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
        assert "event=node.stopped" in err
        assert session_processes(proc.pid) == []
        assert kamailios(tmp_path) == [], f"stop {n + 1}: Kamailio left running"


def test_kill_9_of_serve_takes_the_edge_with_it_and_a_stale_edge_is_stopped(
    tmp_path: Path,
) -> None:
    config, _sip = edge_node(tmp_path, workers=1)
    proc = start_node(config)
    try:
        wait_http(http_port(config), "/healthz", proc, timeout=60)
        wait_workers(http_port(config), proc, 1)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not kamailios(tmp_path):
            time.sleep(0.2)
        assert kamailios(tmp_path)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and kamailios(tmp_path):
        time.sleep(0.2)
    assert kamailios(tmp_path) == [], "Kamailio outlived the node"
    # A stale edge from before (started outside the node, as after a crash with an older
    # version): the next serve finds it by its pid file and stops it.
    cfg_file = tmp_path / "var" / "edge" / "kamailio.cfg"
    stale = subprocess.Popen(
        ["/usr/sbin/kamailio", "-DD", "-E", "-f", str(cfg_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    (tmp_path / "var" / "edge" / "kamailio.pid").write_text(f"{stale.pid}\n")
    time.sleep(1)
    assert stale.poll() is None
    proc = start_node(config)
    try:
        wait_http(http_port(config), "/healthz", proc, timeout=60)
        assert stale.wait(timeout=15) is not None
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=90)
    assert "event=edge.stale_stopped" in err, err[-3000:]
    assert proc.returncode == 0
    assert kamailios(tmp_path) == []

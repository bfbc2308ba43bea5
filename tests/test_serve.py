"""`flexvoice serve` as a real subprocess: starts, answers /healthz and /metrics, stops cleanly."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, cli_env, write_node_config
from tests.nodekit import http_port, session_processes, start_node, wait_http

pytestmark = pytest.mark.process  # the CLI, a node or Redis as real processes


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def test_serve_answers_healthz_and_metrics_then_stops_on_sigterm(tmp_path: Path) -> None:
    config = write_node_config(tmp_path)
    proc = start_node(config, "--no-edge")
    try:
        port = http_port(config)
        status, body = wait_http(port, "/healthz", proc)
        health = json.loads(body)
        assert health["version"] == "0.1.0"
        assert set(health) >= {"status", "version", "workers", "edge"}
        assert health["edge"]["enabled"] is False
        status, body = wait_http(port, "/metrics", proc)
        assert status == 200 and b"# TYPE" in body
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "node.stopped" in err and "Traceback" not in err
    # Nothing the node started outlives it.
    assert session_processes(proc.pid) == []


def test_sigint_stops_cleanly(tmp_path: Path) -> None:
    config = write_node_config(tmp_path)
    proc = start_node(config, "--no-edge")
    try:
        wait_http(http_port(config), "/healthz", proc)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert session_processes(proc.pid) == []


def test_http_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    config = write_node_config(tmp_path)
    port = http_port(config)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        proc = start_node(config, "--no-edge")
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert err.strip().splitlines()[-1] == (
        f"flexvoice: error: 127.0.0.1:{port} is already in use (http.port): stop the process "
        f"that holds it (ss -lntup | grep :{port}) or choose another port"
    )
    assert "Traceback" not in err


def test_missing_kamailio_is_one_clear_line(tmp_path: Path) -> None:
    config = write_node_config(tmp_path, extra="")
    proc = subprocess.run(
        [sys.executable, "-m", "flexvoice", "--config", str(config), "serve"],
        cwd=REPO,
        env=cli_env(FLEXVOICE_SIP__EDGE__KAMAILIO="/nonexistent/kamailio"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "flexvoice: error: '/nonexistent/kamailio' was not found on PATH; it is needed for the "
        "SIP edge. Install it with 'apt-get install kamailio' (or point sip.edge.kamailio at "
        "it), or run './run' which installs everything"
    )


def test_no_edge_node_takes_sip_itself_and_refuses_unknown_numbers(tmp_path: Path) -> None:
    from tests.sipptool import run_uac

    config = write_node_config(tmp_path)
    sip_port = int(yaml.safe_load(config.read_text())["sip"]["edge"]["port"])
    proc = start_node(config, "--no-edge")
    try:
        status, body = wait_http(http_port(config), "/healthz", proc)
        assert status == 200, body
        assert json.loads(body)["workers"] == {"up": 1, "total": 1}
        result = run_uac("uac_expect_404.xml", f"127.0.0.1:{sip_port}", "+3225559999")
        assert result.successful == 1, result.output
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "development mode: no Kamailio edge" in err
    assert session_processes(proc.pid) == []


def test_sip_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    config = write_node_config(tmp_path)
    sip_port = int(yaml.safe_load(config.read_text())["sip"]["edge"]["port"])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", sip_port))
        proc = start_node(config, "--no-edge")
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(
        f"flexvoice: error: SIP worker 0 could not start on 127.0.0.1:{sip_port}"
    )
    assert "Traceback" not in err
    assert session_processes(proc.pid) == []

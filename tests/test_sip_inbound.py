"""Incoming calls through a running node: number lookup, 404, 403, a prompt that plays, a
SIGTERM with calls up. Real `flexvoice serve` subprocess, real sipp callers."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import node_db, run_cli, write_node_config
from tests.nodekit import http_port, session_processes, start_node, wait_http
from tests.poolkit import tone
from tests.sipptool import run_uac

pytestmark = pytest.mark.sip


def node_with_numbers(tmp_path: Path) -> tuple[Path, int]:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    tone(prompts / "welcome.wav", 2.0)
    numbers = tmp_path / "numbers.yaml"
    numbers.write_text(
        """
accounts:
  bakery: {tariff: flexio-payu}
  gone: {tariff: flexio-payu}
numbers:
  "+3225551003": {account: bakery, prompt: welcome}
  "+3225551004": {account: gone, prompt: welcome}
"""
    )
    config = write_node_config(tmp_path)
    doc = yaml.safe_load(config.read_text())
    doc["sip"]["numbers"] = str(numbers)
    doc["paths"]["prompts"] = str(prompts)
    config.write_text(yaml.safe_dump(doc))
    return config, int(doc["sip"]["edge"]["port"])


def test_numbers_route_calls_prompt_plays_suspended_403_unknown_404(tmp_path: Path) -> None:
    config, sip_port = node_with_numbers(tmp_path)
    proc = start_node(config, "--no-edge")
    try:
        wait_http(http_port(config), "/healthz", proc)
        db = node_db(config)
        suspended = run_cli("accounts", "suspend", "gone", "--db", db)
        assert suspended.returncode == 0, suspended.stderr
        target = f"127.0.0.1:{sip_port}"
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        rtp.settimeout(0.2)
        # The prompt number answers, plays the 2 s prompt, and hangs up.
        played = run_uac(
            "uac_until_bye.xml", target, "+3225551003",
            keys={"rtp_port": str(rtp.getsockname()[1])},
        )  # fmt: skip
        packets = 0
        try:
            while True:
                rtp.recv(2048)
                packets += 1
        except TimeoutError:
            pass
        rtp.close()
        assert played.successful == 1, played.output
        assert packets >= 60, f"{packets} RTP packets of a 2 s prompt"
        assert run_uac("uac_expect_403.xml", target, "+3225551004").successful == 1
        assert run_uac("uac_expect_404.xml", target, "+3225559999").successful == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "route=prompt" in err and "route=account_suspended" in err
    assert "route=not_found" in err


def test_sigterm_with_a_call_up_hangs_it_up_and_stops_cleanly(tmp_path: Path) -> None:
    from tests.sipptool import uac_args

    config, sip_port = node_with_numbers(tmp_path)
    numbers = Path(yaml.safe_load(config.read_text())["sip"]["numbers"])
    # A long prompt keeps the call up.
    tone(Path(yaml.safe_load(config.read_text())["paths"]["prompts"]) / "welcome.wav", 20.0)
    assert numbers.exists()
    proc = start_node(config, "--no-edge")
    import subprocess

    # Call only once the node answers: on a loaded machine sipp gives up on a node still starting.
    healthy_by = time.monotonic() + 60
    while wait_http(http_port(config), "/healthz", proc)[0] != 200:
        assert time.monotonic() < healthy_by, "the node never became healthy"
        time.sleep(0.2)
    caller = subprocess.Popen(
        uac_args("uac_call.xml", f"127.0.0.1:{sip_port}", "+3225551003", hold_ms=30000),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            _status, body = wait_http(http_port(config), "/metrics", proc)
            if b"flexvoice_active_calls 1.0" in body:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the call never came up")
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        caller.kill()
        caller.communicate()
        if proc.poll() is None:  # the test failed before stopping it: leave nothing running
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 0, err
    assert "pool.hangup_at_shutdown" in err or "call.ended" in err
    assert "Traceback" not in err
    assert session_processes(proc.pid) == []

"""RFC 4475 torture messages sent to a whole node from a trusted address (as a carrier's
would come, past the ACL and pike): the engine stays up, answers an OPTIONS after each
message, no worker restarts, no call slot stays taken, and a real call still works
afterwards. (Most of the messages name foreign hosts, which the edge refuses to relay; the
edge-only test in test_edge_robustness.py checks what it answers to each.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from flexvoice.sip.edge import sip_ping
from tests.conftest import write_node_config
from tests.edge_support import RFC4475, first_reply, torture_messages
from tests.nodekit import http_port, metric, start_node, stop, wait_http, wait_workers
from tests.sipptool import run_uac

pytestmark = [pytest.mark.sip, pytest.mark.edge, pytest.mark.xdist_group("sipnode")]


def test_torture_messages_through_the_edge_leave_workers_up_and_slots_free(
    tmp_path: Path,
) -> None:
    config = write_node_config(tmp_path, workers=2)
    sip_port = int(yaml.safe_load(config.read_text())["sip"]["edge"]["port"])
    proc = start_node(config)
    port = http_port(config)
    try:
        wait_http(port, "/healthz", proc, timeout=60)
        wait_workers(port, proc, 2)
        restarts = metric(port, "flexvoice_worker_restarts_total")
        for name, kind in torture_messages():
            reply = first_reply((RFC4475 / name).read_bytes(), sip_port, "127.0.0.1") or ""
            assert proc.poll() is None, f"the node died on {name}"
            assert sip_ping("127.0.0.1", sip_port, 3), f"no answer to OPTIONS after {name}"
            if kind in ("INVALID", "EXTRA"):
                assert not reply.startswith("SIP/2.0 2"), f"{name} ({kind}) accepted: {reply}"
        deadline = time.monotonic() + 40  # INVITEs the workers answered time out by Timer B/H
        while time.monotonic() < deadline and metric(port, "flexvoice_worker_slots_used"):
            time.sleep(0.5)
        assert metric(port, "flexvoice_worker_slots_used") == 0
        assert metric(port, "flexvoice_worker_restarts_total") == restarts
        status, _body = wait_http(port, "/healthz", proc)
        assert status == 200
        result = run_uac("uac_until_bye.xml", f"127.0.0.1:{sip_port}", "+3225551003")
        assert result.successful == 1, result.output
    finally:
        stop(proc)

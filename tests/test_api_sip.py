"""A call placed over REST on a running node (edge, workers, flows, metering) reaches a sipp
callee behind the trunk; its status, trace and price come back over HTTP."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, free_port_range, run_cli, write_node_config
from tests.sipptool import Uas, counts
from tests.test_serve import http_port, start_node, wait_http
from tests.test_sip_node import stop, wait_workers

pytestmark = [pytest.mark.sip, pytest.mark.edge, pytest.mark.xdist_group("sipnode")]

NOTIFY_FLOW = """\
flow: notify
description: Tells the callee their order is ready, then hangs up
start: tell
steps:
  tell:
    play: {prompt: thanks_bye, then: bye}
  bye:
    hangup: {}
"""


def node_with_trunk(tmp_path: Path, trunk_port: int) -> Path:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "notify.yaml").write_text(NOTIFY_FLOW)
    (tmp_path / "trunks.yaml").write_text(
        f"""trunks:
  carrier:
    proxy: 127.0.0.1:{trunk_port}
    source_addresses: [127.0.0.1]
    caller_id: {{default: "+3225551001"}}
default_outbound: carrier
"""
    )
    (tmp_path / "numbers.yaml").write_text(
        "accounts:\n  shop: {tariff: flexio-payu}\n"
        'numbers:\n  "+3225551001": {account: shop, flow: notify}\n'
    )
    config = write_node_config(tmp_path, workers=2)
    doc = yaml.safe_load(config.read_text())
    doc["sip"]["trunks"] = str(tmp_path / "trunks.yaml")
    doc["sip"]["numbers"] = str(tmp_path / "numbers.yaml")
    doc["paths"]["flows"] = str(flows)
    doc["paths"]["prompts"] = str(REPO / "ivr_prompts")
    config.write_text(yaml.safe_dump(doc))
    return config


def api(port: int, key: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_rest_call_rings_sipp_runs_its_flow_and_is_priced(tmp_path: Path) -> None:
    callee = Uas("uas_answer.xml", free_port_range(1), calls=1)
    config = node_with_trunk(tmp_path, callee.port)
    proc = start_node(config)
    port = http_port(config)
    try:
        wait_http(port, "/healthz", proc, timeout=60)
        wait_workers(port, proc, 2)
        made = run_cli(
            "keys", "create", "--account", "shop", "--role", "developer",
            "--db", str(tmp_path / "flexvoice.db"),
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        key = made.stdout.split()[0]
        status, call = api(
            port, key, "POST", "/v1/calls",
            {"to": "+32470123456", "from": "+3225551001", "flow": "notify", "ring_timeout": 10},
        )  # fmt: skip
        assert status == 201, call
        assert call["status"] == "queued"
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            status, call = api(port, key, "GET", f"/v1/calls/{call['id']}")
            if call["status"] not in ("queued", "ringing", "in-progress"):
                break
            time.sleep(0.3)
        status, trace = api(port, key, "GET", f"/v1/calls/{call['id']}/events")
    finally:
        stop(proc)
        callee_log = callee.stop()
    assert call["status"] == "completed", call
    assert call["sip_status"] == 200
    assert call["answered_at"] and call["ended_at"]
    # A mobile number, one started minute: 0.37.
    assert (call["billable_seconds"], call["price_eur"]) == (60, "0.3700")
    kinds = [e["kind"] for e in trace["events"]] if isinstance(trace, dict) else []
    assert kinds.index("ringing") < kinds.index("answered") < kinds.index("ended"), kinds
    assert any(e["kind"] == "step" and e["data"]["step"] == "tell" for e in trace["events"])
    assert counts(callee_log) == (1, 0)  # the callee answered, then got our BYE
    # The SIP layer billed the leg to the account: finance sees the same 0.37.
    month = call["started_at"][:7]
    export = run_cli(
        "usage", "export", "--month", month, "--detail", "--format", "json",
        "--db", str(tmp_path / "flexvoice.db"),
    )  # fmt: skip
    assert export.returncode == 0, export.stderr
    [leg] = [row for row in json.loads(export.stdout) if row["event_id"] == f"{call['id']}:leg"]
    assert (leg["account"], leg["service"], leg["amount_eur"]) == (
        "shop",
        "voice_out_mobile",
        "0.370000",
    )


def test_inbound_calls_are_call_resources_with_trace_and_price(tmp_path: Path) -> None:
    from tests.sipptool import run_uac

    config = node_with_trunk(tmp_path, free_port_range(1))
    sip_port = int(yaml.safe_load(config.read_text())["sip"]["edge"]["port"])
    proc = start_node(config)
    port = http_port(config)
    try:
        wait_http(port, "/healthz", proc, timeout=60)
        wait_workers(port, proc, 2)
        made = run_cli(
            "keys", "create", "--account", "shop", "--role", "analyst",
            "--db", str(tmp_path / "flexvoice.db"),
        )  # fmt: skip
        key = made.stdout.split()[0]
        # The number's flow thanks the caller and hangs up.
        result = run_uac("uac_until_bye.xml", f"127.0.0.1:{sip_port}", "+3225551001")
        assert result.successful == 1, result.output
        deadline = time.monotonic() + 20
        calls: list[Any] = []
        while time.monotonic() < deadline:
            status, listing = api(port, key, "GET", "/v1/calls")
            assert status == 200, listing
            calls = [c for c in listing["calls"] if c["status"] == "completed"]
            if calls:
                break
            time.sleep(0.3)
        [call] = calls
        status, trace = api(port, key, "GET", f"/v1/calls/{call['id']}/events")
    finally:
        stop(proc)
    assert (call["direction"], call["from"], call["to"]) == (
        "inbound",
        "+3225550100",
        "+3225551001",
    )
    assert (call["sip_status"], call["billable_seconds"], call["price_eur"]) == (200, 60, "0.0045")
    steps = [e["data"]["step"] for e in trace["events"] if e["kind"] == "step"]
    assert steps[:2] == ["tell", "bye"]

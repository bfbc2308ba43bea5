"""The flows' `sms` step: the same path as POST /v1/messages (store, queue, SMPP to the real
SMSC, one `sms` usage event), and `flows simulate` shows it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flexvoice.appkeys import USAGE_SINK
from flexvoice.node.flows import NodeSms
from flexvoice.system import free_port
from tests.apikit import ACME_NUMBER, running_api
from tests.conftest import run_cli
from tests.fakeleg import harness
from tests.metering_helpers import usage_events
from tests.smsctool import running_smsc, smpp_config

FLOW = """
flow: sms-demo
start: confirm
steps:
  confirm:
    sms:
      body: {en: "Thanks {caller}, your booking {ref} is confirmed", nl: "Bedankt, boeking {ref}"}
      then: bye
      on_failure: sorry
  sorry:
    play: {say: "We could not send the message", then: bye}
  bye:
    hangup: {}
"""

CALLER = "+32475123456"

pytestmark = pytest.mark.process  # the SMSC (or the CLI) runs as its own process


async def test_sms_step_sends_through_the_gateway_and_bills(tmp_path: Path) -> None:
    port = free_port()
    with running_smsc(tmp_path, port) as smsc:
        async with running_api(tmp_path, extra_config=smpp_config(port), usage=True) as api:
            h = harness(tmp_path, {"sms-demo": FLOW})
            h.runtime.deps.sms = NodeSms(api.app)
            leg = h.leg(caller=CALLER, callee=ACME_NUMBER)
            await h.call("sms-demo", leg, variables={"ref": "B-42"})
            assert h.observer.steps() == ["confirm", "bye"]
            (got,) = await smsc.wait_received(1)
            assert got["text"] == f"Thanks {CALLER}, your booking B-42 is confirmed"
            assert got["from"] == ACME_NUMBER[1:] and got["to"] == CALLER[1:]
            r = await api.client.get("/v1/messages", headers=api.auth("acme:developer"))
            (message,) = (await r.json())["messages"]
            for _ in range(100):
                r = await api.client.get(
                    f"/v1/messages/{message['id']}", headers=api.auth("acme:developer")
                )
                if (await r.json())["status"] == "delivered":
                    break
                await asyncio.sleep(0.05)
            await api.app[USAGE_SINK].flush()
            # A refused message (a landline) takes on_failure; nothing is sent or billed.
            leg = h.leg(caller="+3225551234", callee=ACME_NUMBER)
            await h.call("sms-demo", leg, variables={"ref": "B-43"})
            assert h.observer.steps()[-2:] == ["sorry", "bye"]
    (event,) = [e for e in usage_events(tmp_path) if e["kind"] == "sms"]
    assert event["id"] == f"sms:{message['id']}" and event["segments"] == 1


def test_simulate_shows_the_sms(tmp_path: Path) -> None:
    path = tmp_path / "sms-demo.yaml"
    path.write_text(FLOW)
    result = run_cli(
        "flows",
        "simulate",
        str(path),
        "--caller",
        CALLER,
        "--callee",
        ACME_NUMBER,
        "--var",
        "ref=B-42",
    )
    assert result.returncode == 0, result.stderr
    assert (
        f"sms {ACME_NUMBER} -> {CALLER} (1 GSM-7 segment(s)): Thanks {CALLER}, your booking "
        "B-42 is confirmed" in result.stdout
    )
    result = run_cli("flows", "validate", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    path.write_text(FLOW.replace("      then: bye\n", "      to: '0475'\n      then: bye\n"))
    result = run_cli("flows", "validate", str(path))
    assert result.returncode == 1 and "neither an E.164 number" in result.stdout

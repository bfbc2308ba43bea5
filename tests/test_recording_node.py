"""A recorded REST call on a running node (edge, workers, flows, API, metering): the callee
(sipp) talks, the recording is listed on the call and in /v1/recordings with its price, its
audio downloads (with ranges), live pause/resume work over REST, a signed
`recording.completed` webhook arrives, and finance's export has the recording's line."""

from __future__ import annotations

import array
import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from flexvoice.api.keys import webhook_secret
from flexvoice.api.webhooks import SIGNATURE_HEADER, verify_signature
from flexvoice.storage.open import open_database
from tests.conftest import free_port_range
from tests.nodekit import SHOP_LINE, StartTrunkNode, api, wait_for
from tests.sipptool import Uas

pytestmark = [pytest.mark.sip, pytest.mark.edge, pytest.mark.xdist_group("sipnode")]

HOLD_FLOW = """\
flow: hold
description: Waits six seconds for a key, then hangs up
start: wait
steps:
  wait:
    gather: {prompt: beep, max_digits: 1, timeout: 6s, retries: 0, then: bye, on_failure: bye}
  bye:
    hangup: {}
"""


class Receiver:
    """A webhook receiver on loopback, in a thread (the test itself is synchronous)."""

    def __init__(self) -> None:
        self.seen: list[tuple[bytes, str]] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                seen.append((body, self.headers.get(SIGNATURE_HEADER, "")))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def download(port: int, key: str, path: str, range_: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    req.add_header("Authorization", f"Bearer {key}")
    if range_:
        req.add_header("Range", range_)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, resp.read()


def test_a_recorded_rest_call_is_listed_priced_downloadable_and_announced(
    trunk_node: StartTrunkNode,
) -> None:
    callee = Uas("uas_talk.xml", free_port_range(1), calls=1)
    receiver = Receiver()
    try:
        node = trunk_node(
            callee.port,
            flows={"hold": HOLD_FLOW},
            numbers={SHOP_LINE: {"account": "shop", "flow": "hold"}},
            settings={"api": {"private_urls": True, "webhook_retry_base": "50ms"}},
        )
        port, key, db = node.port, node.key, node.db
        status, call = api(
            port, key, "POST", "/v1/calls",
            {"to": "+32470123456", "from": "+3225551001", "flow": "hold", "record": True,
             "recording_channels": "dual", "status_callback": receiver.url},
        )  # fmt: skip
        assert status == 201, call
        call_id = call["id"]

        def recording_of_call() -> Any:
            _, doc = api(port, key, "GET", f"/v1/recordings?call_id={call_id}")
            return doc["recordings"][0] if doc["recordings"] else None

        live = wait_for(recording_of_call)
        assert live["status"] == "in-progress" and live["kind"] == "call"
        status, doc = api(port, key, "POST", f"/v1/calls/{call_id}", {"recording": "pause"})
        assert status == 200, doc
        assert recording_of_call()["status"] == "paused"
        status, doc = api(port, key, "POST", f"/v1/calls/{call_id}", {"recording": "resume"})
        assert status == 200, doc
        assert recording_of_call()["status"] == "in-progress"
        status, doc = api(port, key, "POST", f"/v1/calls/{call_id}", {"recording": "start"})
        assert status == 409 and "already being recorded" in doc["detail"], doc
        status, doc = api(
            port, key, "POST", f"/v1/calls/{call_id}",
            {"recording": "pause", "recording_channels": "dual"},
        )  # fmt: skip
        assert status == 422 and "recording_channels" in doc["detail"], doc

        def closed() -> Any:
            rec = recording_of_call()
            return rec if rec["status"] not in ("in-progress", "paused") else None

        rec = wait_for(closed)
        _, call = api(port, key, "GET", f"/v1/calls/{call_id}")
        status, wav = download(port, key, f"/v1/recordings/{rec['id']}.wav")
        assert status == 200
        status, part = download(port, key, f"/v1/recordings/{rec['id']}.wav", "bytes=0-43")
        assert status == 206 and part == wav[:44]
        wait_for(lambda: any(b"recording.completed" in body for body, _ in receiver.seen), 15)
        node.stop()
    finally:
        callee.stop()
        receiver.close()
    assert rec["status"] == "completed", rec
    assert call["status"] == "completed" and [r["id"] for r in call["recordings"]] == [rec["id"]]
    talked = (
        _seconds(call["ended_at"]) - _seconds(call["answered_at"])
        if call["answered_at"] and call["ended_at"]
        else 0
    )
    assert abs(rec["duration_seconds"] - talked) < 1.0, (rec, talked)
    assert (rec["billable_seconds"], rec["price_eur"]) == (60, "0.0025")
    assert len(wav) == rec["size_bytes"]
    assert rec["channels"] == 2
    samples = array.array("h")
    samples.frombytes(wav[44:])
    # Dual channel: the called party on the left, what it heard (the flow's silence) right.
    callee_said, it_heard = samples[0::2], samples[1::2]
    speech = callee_said[2 * 8000 : 4 * 8000]  # the callee talks from 1.5 s after its answer
    assert (sum(x * x for x in speech) / len(speech)) ** 0.5 > 300
    assert max(abs(x) for x in it_heard[2 * 8000 : 4 * 8000]) < 200
    secret = webhook_secret(open_database(db), "shop")
    [(body, header)] = [(b, h) for b, h in receiver.seen if b"recording.completed" in b]
    assert verify_signature(secret, body, header)
    payload = json.loads(body)
    assert payload["event"] == "recording.completed"
    assert payload["recording"]["id"] == rec["id"]
    assert payload["recording"]["sha256"] == rec["sha256"]
    [line] = [row for row in node.export(rec["started_at"][:7]) if row["event_id"] == rec["id"]]
    assert (line["account"], line["amount_eur"]) == ("shop", "0.002500"), line


def _seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()

"""SMS as SIP MESSAGE (RFC 3428) on a running node: out through a worker, the Kamailio edge and
the trunk to sipp as the receiving carrier; in from sipp as the carrier through the edge to a
worker and the messaging service. Verification codes too, read back from what sipp received,
and never in the node's log."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flexvoice.flows.simulate import wav_seconds
from tests.conftest import REPO, free_port_range
from tests.nodekit import StartTrunkNode, api, wait_for
from tests.sipptool import SCENARIOS, free_udp_pair, wait_udp_bound

pytestmark = [pytest.mark.sip, pytest.mark.edge, pytest.mark.xdist_group("sipnode")]

MOBILE = "+32475123456"
NUMBER = "+3225551001"


def carrier(port: int, log: Path, count: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        ["sipp", "-sf", str(SCENARIOS / "uas_message.xml"), "-i", "127.0.0.1", "-p", str(port),
         "-mp", str(free_udp_pair()), "-m", str(count), "-nostdin", "-timeout", "120s",
         "-trace_msg", "-message_file", str(log)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    wait_udp_bound("127.0.0.1", port, proc)
    return proc


def bodies(log: Path) -> list[str]:
    """Texts of the MESSAGEs sipp received (its -trace_msg log), in order."""
    if not log.exists():
        return []
    out = []
    for block in re.split(r"(?:UDP|TCP) message received \[\d+\] bytes :\n\n", log.read_text())[1:]:
        head, _, rest = block.partition("\n\n")
        found = re.search(r"Content-Length:\s*(\d+)", head)
        if head.startswith("MESSAGE sip:") and found:
            out.append(rest.encode()[: int(found.group(1))].decode())
    return out


def test_sms_and_verification_over_sip_message_through_the_edge(
    tmp_path: Path, trunk_node: StartTrunkNode
) -> None:
    trunk_port = free_port_range(1)
    log = tmp_path / "carrier.log"
    sipp = carrier(trunk_port, log, 3)
    try:
        node = trunk_node(
            trunk_port, settings={"messaging": {"gateway": "sip", "retry_base": "500ms"}}
        )
        port, key = node.port, node.key
        text = "Your order is ready. " * 20  # 420 characters: 3 SMS segments, one MESSAGE
        status, message = api(port, key, "POST", "/v1/messages",
                              {"to": MOBILE, "from": NUMBER, "body": text})  # fmt: skip
        assert status == 201, message
        assert message["segments"] == 3 and message["price_eur"] == "0.285"

        def sent() -> Any:
            _, doc = api(port, key, "GET", f"/v1/messages/{message['id']}")
            return doc if doc["status"] == "sent" else None

        wait_for(sent)
        assert wait_for(lambda: bodies(log)) == [text]
        head = log.read_text().split("UDP message received")[1]
        assert (
            f"From: <sip:{NUMBER}@" in head
            and f"MESSAGE sip:{MOBILE}@127.0.0.1:{trunk_port}" in head
        )

        status, verification = api(port, key, "POST", "/v1/verifications", {"to": MOBILE})
        assert status == 201, verification
        got = wait_for(lambda: bodies(log)[1:])
        code = re.search(r"\d{6}", got[0]).group(0)  # type: ignore[union-attr]
        check_path = f"/v1/verifications/{verification['id']}/check"
        status, checked = api(port, key, "POST", check_path, {"code": code})
        assert (status, checked["status"]) == (200, "approved")

        # The carrier sends an SMS to our number: it reaches the account as an inbound message.
        uac = subprocess.run(
            ["sipp", "-sf", str(SCENARIOS / "uac_message.xml"), "-i", "127.0.0.1",
             "-p", str(free_port_range(1)), "-m", "1", "-s", NUMBER, "-set", "text", "STOP",
             "-nostdin", "-timeout", "20s", node.edge],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert uac.returncode == 0, uac.stdout[-2000:]

        def inbound() -> Any:
            _, doc = api(port, key, "GET", "/v1/messages?status=received")
            return doc["messages"]

        (received,) = wait_for(inbound)
        # (sipp ends the body with CRLF; the keyword is read without surrounding space)
        assert (received["from"], received["to"], received["body"]) == (MOBILE, NUMBER, "STOP\r\n")
        status, refused = api(port, key, "POST", "/v1/messages",
                              {"to": MOBILE, "from": NUMBER, "body": "hello"})  # fmt: skip
        assert status == 422 and refused["error_code"] == 21610
        node_log = node.stop()
    finally:
        sipp.kill()
        sipp.communicate(timeout=10)
    assert "sms.status" in node_log  # the node logged the messages ...
    assert code not in node_log  # ... and never the code


def test_verification_by_voice_speaks_the_code_twice(trunk_node: StartTrunkNode) -> None:
    """sipp answers the verification call; the RTP that reaches its media port lasts as long
    as the locale's prompts: intro, six digits, repeat, six digits, goodbye."""
    trunk_port = free_port_range(1)
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media.bind(("127.0.0.1", 0))
    media.settimeout(0.5)
    packets: list[bytes] = []
    done = threading.Event()

    def receive() -> None:
        while not done.is_set():
            try:
                packets.append(media.recv(2048))
            except TimeoutError:
                continue

    reader = threading.Thread(target=receive)
    reader.start()
    callee = subprocess.Popen(
        ["sipp", "-sf", str(SCENARIOS / "uas_answer_media.xml"), "-i", "127.0.0.1",
         "-p", str(trunk_port), "-mp", str(free_udp_pair()), "-m", "1", "-nostdin",
         "-timeout", "90s", "-set", "rtp", str(media.getsockname()[1])],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    wait_udp_bound("127.0.0.1", trunk_port, callee)
    try:
        node = trunk_node(trunk_port)
        port, key = node.port, node.key
        status, verification = api(
            port,
            key,
            "POST",
            "/v1/verifications",
            {"to": MOBILE, "channel": "voice", "locale": "fr"},
        )
        assert status == 201, verification
        assert verification["call_id"].startswith("VC") and verification["message_id"] is None
        callee.wait(60)  # sipp ends after our BYE
        time.sleep(0.3)
        node_log = node.stop()
    finally:
        done.set()
        reader.join()
        media.close()
        if callee.poll() is None:
            callee.kill()
        out = callee.communicate(timeout=10)[0]
    assert callee.returncode == 0, out[-2000:]
    prompts = REPO / "ivr_prompts" / "fr"
    names = ["verify_intro", *["digit_0"] * 6, "verify_repeat", *["digit_0"] * 6, "verify_bye"]
    # Digits differ in length; the shortest and longest bound what six of them can last.
    digit_seconds = [wav_seconds(prompts / f"digit_{d}.wav") for d in range(10)]
    fixed = sum(
        wav_seconds(prompts / f"{n}.wav") for n in ("verify_intro", "verify_repeat", "verify_bye")
    )
    audio = [p for p in packets if p[1] & 0x7F == 8]
    seconds = len(audio) * 0.02
    assert (
        fixed + 12 * min(digit_seconds) - 0.5 <= seconds <= fixed + 12 * max(digit_seconds) + 1.5
    ), (seconds, names)
    assert any(sum(b != 0xD5 for b in p[12:]) > 100 for p in audio)  # speech, not silence
    assert "verify.call_done" in node_log

"""A call is one tree (issue 10), through a running node: the Kamailio edge, pjsua2 workers,
sipp as the carrier behind the trunk and as the dialled phones, the REST API over HTTP and
finance's export; also the designer's "Call me" (issue 15), whose call is one such tree. One
node serves the module's tests; each test starts its own sipp peers."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from flexvoice.accounts import set_designer
from flexvoice.users import create_user
from tests.conftest import free_port_range
from tests.designerkit import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, PASSWORD
from tests.nodekit import NOTIFY_FLOW, TrunkNode, launch_trunk_node
from tests.sipptool import Uas, counts, run_uac, uac_args

pytestmark = [pytest.mark.sip, pytest.mark.edge, pytest.mark.xdist_group("sipnode")]

CA_ID = re.compile(r"^CA[0-9a-f]{32}$")
MOBILE = "+32470555001"  # what the `connect` flow dials (through the trunk)

CONNECT_FLOW = f"""\
flow: connect
description: Connects the answered call to the shop's mobile
start: connect
steps:
  connect:
    dial: {{targets: ["{MOBILE}"], ring_timeout: 10s}}
"""


# The carrier's sipp (uas_carrier_by_number.xml) answers these busy, not at all, answered.
HUNT_FLOW = """\
flow: hunt
description: Rings three phones one after the other
start: hunt
steps:
  hunt:
    dial:
      targets: ["+32470555001", "+32470555002", "+32470555003"]
      ring_timeout: 2s
"""


def ended(call: dict[str, Any]) -> bool:
    return call["status"] not in ("queued", "ringing", "in-progress")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrunkNode]:
    shop = {"account": "shop", "flow": "notify"}
    started = launch_trunk_node(
        tmp_path_factory.mktemp("calltree"),
        free_port_range(1),
        flows={"connect": CONNECT_FLOW, "notify": NOTIFY_FLOW},
        numbers={
            "+3225551001": shop,
            "+3216001100": shop,
            "+3225551002": {"account": "shop", "flow": "connect"},
        },
        caller_id={"default": "+3225551001", "allowed": ["+3225551001", "+32255510*"]},
    )
    try:
        started.new_key("shop", "developer")  # before the first test, as ever
        yield started
    finally:
        err = started.stop()
        # No worker-internal id (w<index>.<pid>.<n>) in any log line about a call.
        assert not re.search(r"call_id=w\d+\.", err), err[-2000:]


def test_rest_hangup_of_a_bridged_call_ends_both_legs_and_prices_the_tree(node: TrunkNode) -> None:
    carrier = Uas("uas_answer.xml", node.trunk_port, calls=2)  # the callee and the mobile
    try:
        status, call = node.call(
            {"to": "+32470123456", "from": "+3225551001", "flow": "connect", "ring_timeout": 10}
        )
        assert status == 201, call
        assert CA_ID.match(call["id"])
        bridged = node.wait_call(
            call["id"], lambda c: c["legs"] and c["legs"][0]["status"] == "in-progress"
        )
        assert bridged["legs"], bridged
        time.sleep(1.0)  # talking
        status, hung = node.api("POST", f"/v1/calls/{call['id']}", {"status": "completed"})
        assert status == 200, hung
        t0 = time.monotonic()
        while node.active_calls() != 0 and time.monotonic() - t0 < 1.0:
            time.sleep(0.05)
        assert node.active_calls() == 0  # within a second, no leg left
        parent = node.wait_call(call["id"], lambda c: ended(c) and all(map(ended, c["legs"])))
    finally:
        carrier_log = carrier.finish()  # its counts are final once it ends
    # Both sipp sides got our BYE: the call placed over REST and the leg it dialled.
    assert counts(carrier_log) == (2, 0), carrier_log[-2000:]
    assert invites(carrier_log) == 2  # (what the refusal tests see none of)
    [leg] = parent["legs"]
    assert CA_ID.match(leg["id"]) and leg["to"] == MOBILE
    assert (parent["status"], parent["ended_by"], parent["reason"]) == (
        "completed",
        "api",
        "Normal call clearing",
    )
    assert (leg["status"], leg["sip_status"], leg["ended_by"]) == ("completed", 200, "api")
    # The dialled leg is a call resource of its own, pointing at its parent.
    child = node.get(f"/v1/calls/{leg['id']}")
    assert child["parent_call_id"] == call["id"] and child["price_eur"] == "0.3700"
    assert child["from"] == "+3225551001"  # the caller ID the carrier saw
    # The parent's price is its own and its leg's, and finance exports the same two rows.
    assert parent["price_breakdown"] == [
        {"call_id": call["id"], "part": "own", "price_eur": "0.3700"},
        {"call_id": leg["id"], "part": "leg", "price_eur": "0.3700"},
    ]
    assert parent["price_eur"] == "0.7400"
    rows = {r["event_id"]: r for r in node.export(parent["started_at"][:7])}
    for part in parent["price_breakdown"]:
        row = rows[f"{part['call_id']}:leg"]
        assert Decimal(row["amount_eur"]) == Decimal(part["price_eur"]), row
    # One answered and one ended per leg, with the real SIP reason; no false shutdown story.
    for call_id in (call["id"], leg["id"]):
        events = node.get(f"/v1/calls/{call_id}/events")["events"]
        kinds = [e["kind"] for e in events]
        assert kinds.count("answered") == 1 and kinds.count("ended") == 1, kinds
        [end] = [e["data"] for e in events if e["kind"] == "ended"]
        assert (end["sip_status"], end["reason"], end["ended_by"]) == (
            200,
            "Normal call clearing",
            "api",
        )
        resource = node.get(f"/v1/calls/{call_id}")
        assert end["billable_seconds"] == resource["billable_seconds"] == 60
    trace = node.get(f"/v1/calls/{call['id']}/events")["events"]
    [flow_end] = [e["data"] for e in trace if e["kind"] == "flow_end"]
    assert "shutting down" not in flow_end["reason"], flow_end
    assert "API" in flow_end["reason"], flow_end


def test_an_unknown_flow_is_refused_before_anything_rings(node: TrunkNode) -> None:
    carrier = Uas("uas_answer.xml", node.trunk_port, calls=1, timeout=4)
    try:
        status, problem = node.call({"to": "+32470123456", "from": "+3225551001", "flow": "conect"})
        carrier.proc.wait(timeout=15)  # its own timeout: it prints what it received
    finally:
        carrier_log = carrier.stop()
    assert status == 422, problem
    assert problem["type"].endswith(":unknown-flow") and problem["field"] == "flow"
    assert "did you mean 'connect'?" in problem["detail"], problem
    assert invites(carrier_log) == 0  # sipp saw nothing
    listing = node.api("GET", "/v1/calls?to=%2B32470123456&from=%2B3225551001")
    assert all(c["flow"] != "conect" for c in listing[1]["calls"])


def test_a_caller_id_the_trunk_does_not_allow_is_refused(node: TrunkNode) -> None:
    carrier = Uas("uas_answer.xml", node.trunk_port, calls=1, timeout=4)
    try:
        status, problem = node.call({"to": "+32470123456", "from": "+3216001100", "flow": "notify"})
        carrier.proc.wait(timeout=15)  # its own timeout: it prints what it received
    finally:
        carrier_log = carrier.stop()
    assert status == 422, problem
    assert problem["type"].endswith(":caller-id-not-allowed") and problem["field"] == "from"
    assert "caller_id.allowed (+3225551001, +32255510*)" in problem["detail"], problem
    assert "trunk 'carrier'" in problem["detail"]
    assert invites(carrier_log) == 0


def test_a_sequential_hunt_shows_three_children_with_their_outcomes(node: TrunkNode) -> None:
    carrier = Uas("uas_carrier_by_number.xml", node.trunk_port, calls=4)
    (node.tmp / "flows" / "hunt.yaml").write_text(HUNT_FLOW)
    try:
        deadline = time.monotonic() + 10
        status, call = 0, None
        while time.monotonic() < deadline:  # the runtime picks the new file up within 1 s
            status, call = node.call(
                {"to": "+32470123456", "from": "+3225551001", "flow": "hunt", "ring_timeout": 10}
            )
            if status != 422:
                break
            time.sleep(0.3)
        assert status == 201, call
        assert call is not None
        parent = node.wait_call(
            call["id"], lambda c: len(c["legs"]) == 3 and c["legs"][2]["status"] == "in-progress"
        )
        status, _ = node.api("POST", f"/v1/calls/{call['id']}", {"status": "completed"})
        parent = node.wait_call(call["id"], lambda c: ended(c) and all(map(ended, c["legs"])))
    finally:
        carrier_log = carrier.stop()
    outcomes = [(leg["to"], leg["status"], leg["sip_status"]) for leg in parent["legs"]]
    assert outcomes == [
        ("+32470555001", "busy", 486),
        ("+32470555002", "no-answer", 487),
        ("+32470555003", "completed", 200),
    ], (outcomes, carrier_log[-2000:])
    assert all(CA_ID.match(leg["id"]) for leg in parent["legs"])
    trace = node.get(f"/v1/calls/{call['id']}/events")["events"]
    assert [e["data"]["status"] for e in trace if e["kind"] == "leg_ended"] == [
        "busy",
        "no-answer",
        "completed",
    ]


def test_inbound_calls_get_call_ids_and_one_answered_and_ended(node: TrunkNode) -> None:
    result = run_uac("uac_until_bye.xml", node.edge, "+3225551001")
    assert result.successful == 1, result.output
    deadline = time.monotonic() + 10
    inbound: list[Any] = []
    while time.monotonic() < deadline and not inbound:
        listing = node.get("/v1/calls?from=%2B3225550100")
        inbound = [c for c in listing["calls"] if c["direction"] == "inbound" and ended(c)]
        time.sleep(0.2)
    [call] = inbound
    assert CA_ID.match(call["id"]), call["id"]
    assert (call["ended_by"], call["reason"]) == ("flow", "Normal call clearing")
    kinds = [e["kind"] for e in node.get(f"/v1/calls/{call['id']}/events")["events"]]
    assert kinds.count("answered") == 1 and kinds.count("ended") == 1, kinds


def inbound_bridged(node: TrunkNode) -> dict[str, Any]:
    """The newest inbound call to +3225551002 once its dialled leg is bridged."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        calls = node.get("/v1/calls?to=%2B3225551002")["calls"]
        live = [c for c in calls if c["legs"] and c["legs"][0]["status"] == "in-progress"]
        if live:
            return dict(live[0])
        time.sleep(0.2)
    raise AssertionError("no bridged inbound call")


def test_the_caller_hanging_up_ends_the_dialled_leg(node: TrunkNode) -> None:
    carrier = Uas("uas_answer.xml", node.trunk_port, calls=1)
    try:
        caller = subprocess.Popen(
            uac_args("uac_call.xml", node.edge, "+3225551002", hold_ms=3000),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        call = inbound_bridged(node)
        out, _ = caller.communicate(timeout=30)
        assert counts(out) == (1, 0), out[-2000:]
        call = node.wait_call(call["id"], lambda c: ended(c) and all(map(ended, c["legs"])))
        t0 = time.monotonic()
        while node.active_calls() != 0 and time.monotonic() - t0 < 1.0:
            time.sleep(0.05)
        assert node.active_calls() == 0
    finally:
        carrier_log = carrier.finish()  # its counts are final once it ends
    assert counts(carrier_log) == (1, 0)  # the mobile got our BYE
    assert CA_ID.match(call["id"]) and call["ended_by"] == "caller"
    assert call["legs"][0]["ended_by"] == "caller"


def test_rest_hangup_of_an_inbound_call_ends_the_caller_and_the_dialled_leg(
    node: TrunkNode,
) -> None:
    carrier = Uas("uas_answer.xml", node.trunk_port, calls=1)
    try:
        caller = subprocess.Popen(
            uac_args("uac_until_bye.xml", node.edge, "+3225551002"),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        call = inbound_bridged(node)
        status, hung = node.api("POST", f"/v1/calls/{call['id']}", {"status": "completed"})
        assert status == 200, hung
        out, _ = caller.communicate(timeout=30)
        call = node.wait_call(call["id"], lambda c: ended(c) and all(map(ended, c["legs"])))
    finally:
        carrier_log = carrier.finish()  # its counts are final once it ends
    assert counts(out) == (1, 0), out[-2000:]  # the caller got our BYE
    assert counts(carrier_log) == (1, 0)  # so did the mobile
    assert (call["ended_by"], call["legs"][0]["ended_by"]) == ("api", "api")


def invites(sipp_output: str) -> int:
    """How many calls (INVITEs) a sipp UAS received, from its statistics screen."""
    found = re.search(r"Incoming calls created\s*\|\s*\d+\s*\|\s*(\d+)", sipp_output)
    assert found is not None, sipp_output[-1500:]
    return int(found.group(1))


# What the shop's manager drafts in the designer (not published): a menu that waits for 4.
CALL_ME_DRAFT = """\
flow: notify
description: Asks the callee to confirm with 4 (a draft, not published)
start: ask
steps:
  ask:
    menu: {prompt: beep, options: {"4": confirmed}, timeout: 6s, retries: 0, on_failure: bye}
  confirmed:
    play: {prompt: beep, then: bye}
  bye:
    hangup: {}
"""


def test_designer_call_me_rings_the_phone_which_hears_the_draft(node: TrunkNode) -> None:
    """The designer's "Call me" button, in chromium, places a real call: the node's
    originator, the Kamailio edge, the carrier's sipp answering and pressing 4 in the
    draft's menu; the call, its trace and its price are the API's and finance's as ever."""
    manager = "manager@shop.be"
    conn = node.store()
    try:
        set_designer(conn, "shop", True)
        create_user(conn, manager, "shop", "manager", PASSWORD)
    finally:
        conn.close()
    phone = Uas("uas_dtmf.xml", node.trunk_port, calls=1)
    url = f"http://127.0.0.1:{node.port}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(30000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            try:
                page.goto(url + "/designer/")
                page.fill("#email", manager)
                page.fill("#password", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_selector("select[aria-label=flow]")
                # The draft, saved as the page saves an edit of the YAML text.
                saved = page.evaluate(
                    """async (text) => {
                      const me = await (await fetch('/designer/api/me')).json();
                      const flow = await (await fetch('/designer/api/flows/notify')).json();
                      const r = await fetch('/designer/api/flows/notify/edit', {method: 'POST',
                        headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf,
                                  'If-Match': '"' + flow.etag + '"'},
                        body: JSON.stringify({ops: [{op: 'replace', text}]})});
                      return r.status; }""",
                    CALL_ME_DRAFT,
                )
                assert saved == 200
                page.select_option("select[aria-label=flow]", "notify")
                page.wait_for_selector('.react-flow__node[data-id="confirmed"]')
                page.get_by_role("tab", name="Try it").click()
                page.fill("#call-to", "+32470123456")
                page.select_option("#call-from", "+3225551001")
                page.get_by_role("button", name="Call me").click()
                status = page.get_by_role("status").filter(has_text="Calling +32470123456")
                said = status.inner_text()
                # The number is remembered for the next time.
                assert page.evaluate("() => localStorage.getItem('flexvoice.phone')") == (
                    "+32470123456"
                )
            except BaseException:
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "call_me_real.png"), full_page=True)
                raise
            finally:
                browser.close()
        assert not errors, errors
        found = re.search(r"\(call (CA[0-9a-f]{32})\)", said)
        assert found, said
        call = node.wait_call(found.group(1), ended, timeout=40)
    finally:
        phone_log = phone.stop()
    # The phone rang (180), answered, pressed 4 and got the node's BYE.
    assert counts(phone_log) == (1, 0), phone_log[-2000:]
    assert invites(phone_log) == 1
    assert (call["direction"], call["from"], call["to"]) == (
        "outbound",
        "+3225551001",
        "+32470123456",
    )
    assert (call["status"], call["sip_status"], call["flow"]) == ("completed", 200, "notify")
    events = node.get(f"/v1/calls/{call['id']}/events")["events"]
    kinds = [e["kind"] for e in events]
    assert kinds.index("ringing") < kinds.index("answered") < kinds.index("ended"), kinds
    # The draft ran (the published flow would have said "tell"), named in the trace.
    steps = [e["data"]["step"] for e in events if e["kind"] == "step"]
    assert steps == ["ask", "confirmed", "bye"], json.dumps(events)[-3000:]
    [document] = [e["data"] for e in events if e["kind"] == "flow_document"]
    assert document["source"].startswith("designer draft of notify"), document
    # Billed as any call: a mobile, one started minute, the same 0.37 in finance's export.
    assert (call["billable_seconds"], call["price_eur"]) == (60, "0.3700")
    rows = {r["event_id"]: r for r in node.export(call["started_at"][:7])}
    leg = rows[f"{call['id']}:leg"]
    assert (leg["account"], leg["service"], leg["amount_eur"]) == (
        "shop",
        "voice_out_mobile",
        "0.370000",
    )

"""The designer's prompts (list, play, upload converted by sox), what "Call me" refuses
before anything rings, and new flows, over HTTP against the real node app."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from flexvoice.flows.deps import FlowDeps
from flexvoice.flows.simulate import ScriptedLeg
from tests.apikit import ACME_NUMBER, problem
from tests.designerkit import (
    ADMIN,
    ANALYST,
    MANAGER,
    NO_DESIGNER,
    Browser,
    Designer,
    running_designer,
)
from tests.fakeleg import Observer

pytestmark = pytest.mark.xdist_group("designer")


@pytest.fixture
async def d(tmp_path: Path) -> AsyncIterator[Designer]:
    async with running_designer(tmp_path) as designer:
        yield designer


@pytest.fixture
async def tab(d: Designer) -> AsyncIterator[Browser]:
    b = Browser(d)
    await b.login(MANAGER)
    yield b
    await b.close()


def recording(tmp_path: Path, seconds: float = 1.0) -> bytes:
    """A 44.1 kHz stereo tone, as a phone or a laptop records it."""
    out = tmp_path / "rec.wav"
    subprocess.run(
        ["sox", "-n", "-r", "44100", "-c", "2", "-b", "16", str(out), "synth", str(seconds),
         "sine", "440"],
        check=True, capture_output=True,
    )  # fmt: skip
    return out.read_bytes()


async def put(tab: Browser, path: str, data: bytes, csrf: str | None = None) -> Any:
    headers = {"X-CSRF-Token": tab.csrf if csrf is None else csrf, "Origin": tab.d.url}
    return await tab.s.put(tab.d.url + "/designer/api" + path, data=data, headers=headers)


@pytest.mark.process  # sox converts the upload
async def test_prompts_are_listed_played_and_uploaded_as_8khz_mono(
    d: Designer, tab: Browser, tmp_path: Path
) -> None:
    listing = await (await tab.get("/prompts")).json()
    names = {(p["language"], p["name"]) for p in listing["prompts"]}
    assert ("all", "beep") in names and "nl" in listing["languages"]
    r = await tab.get("/prompts/all/beep")
    assert r.status == 200 and r.headers["Content-Type"] == "audio/wav"
    assert (await r.read())[:4] == b"RIFF"

    # 8 s of CD-quality stereo: 1.4 MB, past the API's 1 MiB body limit (uploads have their own).
    r = await put(tab, "/prompts/nl/holiday", recording(tmp_path, 8.0))
    assert r.status == 201, await r.text()
    doc = await r.json()
    assert doc["seconds"] == 8.0
    saved = d.flows_dir.parent / "ivr_prompts" / "nl" / "holiday.wav"
    with wave.open(str(saved)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
    listing = await (await tab.get("/prompts")).json()
    listed = next(p for p in listing["prompts"] if p["name"] == "holiday")
    assert (listed["language"], listed["seconds"]) == ("nl", 8.0)
    # A flow may now use it: the validator finds the file.
    state = await tab.state()
    r = await tab.post(
        "/flows/bakery-main/edit",
        {"ops": [{"op": "set", "step": "closed", "path": ["prompt"], "value": "holiday"}]},
        state["etag"],
    )
    assert r.status == 200, await r.text()
    problems = [p["message"] for p in (await r.json())["problems"]]
    assert not any("holiday" in m and "missing" in m for m in problems), problems


@pytest.mark.process
async def test_bad_uploads_get_named_errors(d: Designer, tab: Browser, tmp_path: Path) -> None:
    r = await put(tab, "/prompts/nl/notes", b"hello, this is text")
    doc = await problem(r, 422, "invalid-audio")
    assert "not a WAV file" in doc["detail"]
    r = await put(tab, "/prompts/nl/broken", b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 4)
    doc = await problem(r, 422, "invalid-audio")
    assert "sox could not read" in doc["detail"]
    r = await put(tab, "/prompts/nl/Bad Name", recording(tmp_path))
    doc = await problem(r, 422, "invalid-field", "name")
    assert "lower-case" in doc["detail"]
    r = await put(tab, "/prompts/dutch/ok", recording(tmp_path))
    await problem(r, 422, "invalid-field", "language")
    big = b"RIFF" + b"\x00" * (16 * 1024 * 1024 + 10)
    r = await put(tab, "/prompts/nl/big", big)
    doc = await problem(r, 413, "audio-too-large")
    assert "16 MiB" in doc["detail"]
    r = await put(tab, "/prompts/nl/nocsrf", recording(tmp_path), csrf="wrong")
    await problem(r, 403, "forbidden")
    analyst = Browser(d)
    try:
        await analyst.login(ANALYST)
        r = await put(analyst, "/prompts/nl/mine", recording(tmp_path))
        await problem(r, 403, "forbidden")
    finally:
        await analyst.close()
    assert not (d.flows_dir.parent / "ivr_prompts" / "nl" / "big.wav").exists()


async def test_call_me_refuses_a_wrong_number_before_anything_rings(
    d: Designer, tab: Browser
) -> None:
    """What "Call me" refuses with words. The call it places is tested for real (the edge and
    a sipp phone) in tests/test_call_tree.py."""
    numbers = await (await tab.get("/numbers")).json()
    assert numbers["numbers"] == [ACME_NUMBER]
    r = await tab.post("/flows/bakery-main/call", {"to": "hello"})
    await problem(r, 422, "invalid-number")
    r = await tab.post("/flows/bakery-main/call", {"to": "+32470123456", "from": "+3226002000"})
    doc = await problem(r, 422, "invalid-field", "from")
    assert "not one of this account's numbers" in doc["detail"]
    analyst = Browser(d)
    try:
        await analyst.login(ANALYST)
        r = await analyst.post("/flows/bakery-main/call", {"to": "+32470123456"})
        await problem(r, 403, "forbidden")
    finally:
        await analyst.close()
    r = await d.api.client.get("/v1/calls", headers=d.api.auth("acme:developer"))
    assert (await r.json())["calls"] == []  # nothing was placed


async def test_a_new_flow_is_created_valid_and_served(d: Designer, tab: Browser) -> None:
    r = await tab.post("/flows", {"name": "holiday-line", "description": "Closed for the holidays"})
    assert r.status == 201, await r.text()
    state = await r.json()
    assert state["errors"] == 0 and [s["name"] for s in state["steps"]] == ["welcome", "goodbye"]
    assert (d.flows_dir / "holiday-line.yaml").is_file()
    assert "holiday-line" in d.runtime.flows
    listed = [f["name"] for f in (await (await tab.get("/flows")).json())["flows"]]
    assert "holiday-line" in listed
    r = await tab.post("/flows", {"name": "holiday-line"})
    await problem(r, 409, "conflict")
    r = await tab.post("/flows", {"name": "Bad name!"})
    await problem(r, 422, "invalid-field", "name")


async def test_sticky_notes_live_beside_the_flow_never_in_it(d: Designer, tab: Browser) -> None:
    before = (d.flows_dir / "bakery.yaml").read_text()
    assert (await (await tab.get("/flows/bakery-main/notes")).json()) == {"notes": []}
    notes = {
        "notes": [
            {"id": "n1", "text": "Ask Marie before changing the hours", "step": "check_hours"},
            {"id": "n2", "text": "Free note", "x": 40, "y": -20},
        ]
    }
    r = await tab.s.put(
        tab.d.url + "/designer/api/flows/bakery-main/notes",
        json=notes,
        headers={"X-CSRF-Token": tab.csrf, "Origin": tab.d.url},
    )
    assert r.status == 200, await r.text()
    saved = await (await tab.get("/flows/bakery-main/notes")).json()
    assert [n["text"] for n in saved["notes"]] == [
        "Ask Marie before changing the hours",
        "Free note",
    ]
    assert saved["notes"][0]["step"] == "check_hours" and saved["notes"][1]["x"] == 40
    assert "Ask Marie" in (d.flows_dir / "bakery.layout.json").read_text()
    # The flow file, its draft and what the runtime serves are untouched.
    assert (d.flows_dir / "bakery.yaml").read_text() == before
    assert (await tab.state())["draft"] is None
    assert "bakery-main" in d.runtime.flows
    r = await tab.s.put(
        tab.d.url + "/designer/api/flows/bakery-main/notes",
        json={"notes": [{"id": "bad id!", "text": "x"}]},
        headers={"X-CSRF-Token": tab.csrf, "Origin": tab.d.url},
    )
    await problem(r, 422, "invalid-field")
    analyst = Browser(d)
    try:
        await analyst.login(ANALYST)
        assert len((await (await analyst.get("/flows/bakery-main/notes")).json())["notes"]) == 2
        r = await analyst.s.put(
            d.url + "/designer/api/flows/bakery-main/notes",
            json=notes,
            headers={"X-CSRF-Token": analyst.csrf, "Origin": d.url},
        )
        await problem(r, 403, "forbidden")
    finally:
        await analyst.close()
    # Renaming the step takes its note along (the free note stays where it was put).
    state = await tab.state()
    r = await tab.post(
        "/flows/bakery-main/edit",
        {"ops": [{"op": "rename_step", "step": "check_hours", "to": "opening_hours"}]},
        state["etag"],
    )
    assert r.status == 200, await r.text()
    saved = await (await tab.get("/flows/bakery-main/notes")).json()
    assert [(n["id"], n["step"]) for n in saved["notes"]] == [("n1", "opening_hours"), ("n2", None)]
    # The edit's answer carries the moved notes (the page shows them with the renamed step).
    assert (await r.json())["notes"] == saved["notes"]
    # Undone (the page sends the text from before), the note goes back with the step's name.
    r = await tab.post(
        "/flows/bakery-main/edit",
        {"ops": [{"op": "replace", "text": state["text"]}]},
        (await r.json())["etag"],
    )
    assert r.status == 200, await r.text()
    assert [(n["id"], n["step"]) for n in (await r.json())["notes"]] == [
        ("n1", "check_hours"),
        ("n2", None),
    ]
    # Renamed again, then the draft discarded: the note is back beside the published step.
    r = await tab.post(
        "/flows/bakery-main/edit",
        {"ops": [{"op": "rename_step", "step": "check_hours", "to": "when"}]},
        (await r.json())["etag"],
    )
    r = await tab.post("/flows/bakery-main/discard", {}, (await r.json())["etag"])
    assert r.status == 200, await r.text()
    assert (await r.json())["notes"][0]["step"] == "check_hours"
    saved = await (await tab.get("/flows/bakery-main/notes")).json()
    assert saved["notes"][0]["step"] == "check_hours"
    # An edit that renames nothing moves nothing and says nothing of notes.
    state = await tab.state()
    op = {"op": "set", "step": "check_hours", "path": ["timezone"], "value": "Europe/Paris"}
    r = await tab.post("/flows/bakery-main/edit", {"ops": [op]}, state["etag"])
    assert r.status == 200 and "notes" not in await r.json()


async def test_an_administrator_manages_the_accounts_people(d: Designer) -> None:
    admin = Browser(d)
    try:
        await admin.login(ADMIN)
        listed = await (await admin.get("/users")).json()
        emails = {u["email"] for u in listed["users"]}
        assert {ADMIN, MANAGER, ANALYST} <= emails and NO_DESIGNER not in emails  # own account
        r = await admin.post("/users", {"email": "Baker@Bakery.be", "role": "agent"})
        assert r.status == 201, await r.text()
        made = await r.json()
        assert made["email"] == "baker@bakery.be" and len(made["password"]) >= 12
        newcomer = Browser(d)
        try:
            assert (await newcomer.login("baker@bakery.be", made["password"])).status == 303
            # An agent may read, not change (and not manage people).
            await problem(await newcomer.get("/users"), 403, "forbidden")
        finally:
            await newcomer.close()
        guesser = Browser(d)
        try:
            for attempt in range(5):  # five wrong passwords lock the manager out
                await guesser.login(MANAGER, f"wrong {attempt}")
        finally:
            await guesser.close()
        r = await admin.post(f"/users/{MANAGER}/unlock", {})
        assert r.status == 200 and (await r.json())["locked"] is False
        r = await admin.post(f"/users/{MANAGER}/reset", {})
        fresh = (await r.json())["password"]
        again = Browser(d)
        try:
            assert (await again.login(MANAGER, fresh)).status == 303
        finally:
            await again.close()
        await problem(await admin.post("/users", {"email": "x@bakery.be", "role": "boss"}), 422,
                      "invalid-field", "role")  # fmt: skip
        await problem(await admin.post(f"/users/{NO_DESIGNER}/unlock", {}), 404, "not-found")
    finally:
        await admin.close()
    stranger = Browser(d)
    try:
        await problem(await stranger.get("/users"), 401, "unauthenticated")
    finally:
        await stranger.close()


async def test_test_callers_hear_the_draft_and_everyone_else_the_published_flow(
    tmp_path: Path,
) -> None:
    observer = Observer()
    deps = FlowDeps(
        observer=observer, recordings_dir=tmp_path / "rec", tts_cache_dir=tmp_path / "tts"
    )
    async with running_designer(tmp_path, deps) as d:
        tab = Browser(d)
        try:
            await tab.login(MANAGER)
            state = await tab.state()
            r = await tab.post(
                "/flows/bakery-main/edit",
                {"ops": [{"op": "set_header", "key": "start", "value": "closed"}]},
                state["etag"],
            )
            assert r.status == 200, await r.text()
            headers = {"X-CSRF-Token": tab.csrf, "Origin": d.url}
            testers = d.url + "/designer/api/flows/bakery-main/testers"
            r = await tab.s.put(testers, json={"callers": ["0470 11 12 13"]}, headers=headers)
            doc = await problem(r, 422, "invalid-number", "callers.0")
            assert "+32470111213" in doc["detail"]  # the fix is named
            callers = ["+32470999888", "+32470111213"]
            r = await tab.s.put(testers, json={"callers": callers}, headers=headers)
            assert r.status == 200, await r.text()
            assert (await r.json())["callers"] == ["+32470111213", "+32470999888"]
            shown = await (await tab.get("/flows/bakery-main/testers")).json()
            assert shown["callers"] == ["+32470111213", "+32470999888"]
        finally:
            await tab.close()

        async def first_step(caller: str, call_id: str) -> str:
            leg = ScriptedLeg(caller=caller, callee=ACME_NUMBER, call_id=call_id)
            task = d.runtime.start_call(leg, "bakery-main", account="acme")
            for _ in range(200):
                if observer.steps(call_id):
                    break
                await asyncio.sleep(0.02)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            return observer.steps(call_id)[0]

        assert await first_step("+32470111213", "t-1") == "closed"  # a tester: the draft
        assert await first_step("+32470555444", "t-2") == "check_hours"  # published


def merged(before: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """The page's mergeAnswer (web/src/canvasgraph.js), to hold the answer to it."""
    steps = {s["name"]: s for s in before["steps"]}
    steps.update({s["name"]: s for s in answer["steps_changed"]})
    order = answer.get("step_names", [s["name"] for s in before["steps"]])
    lines = re.findall(r"[^\n]*\n|[^\n]+$", before["text"])
    patch = answer["text_patch"]
    text = "".join(lines[: patch["from"]] + patch["lines"] + lines[patch["to"] :])
    rest = {
        k: v for k, v in answer.items() if k not in ("steps_changed", "step_names", "text_patch")
    }
    return {**rest, "text": text, "steps": [steps[n] for n in order]}


async def test_an_edit_can_answer_only_what_changed(tab: Browser) -> None:
    before = await tab.state()
    op = {"op": "set", "step": "orders", "path": ["ring_timeout"], "value": "soon"}
    r = await tab.post(
        "/flows/bakery-main/edit", {"ops": [op], "answer": "changes"}, before["etag"]
    )
    assert r.status == 200, await r.text()
    small = await r.json()
    whole = await tab.state()  # the same version, asked whole
    assert "steps" not in small and "step_names" not in small and "text" not in small
    assert [s["name"] for s in small["steps_changed"]] == ["orders"]
    assert len(small["text_patch"]["lines"]) == 1 and "soon" in small["text_patch"]["lines"][0]
    assert merged(before, small) == whole
    assert small["header"]["start"] == "check_hours" and "steps" not in small["header"]
    assert any(p["step"] == "orders" and p["severity"] == "error" for p in small["problems"])
    # A rename changes the names (in order) and every step that pointed at the old one.
    rename = {"op": "rename_step", "step": "menu", "to": "main_menu"}
    r = await tab.post(
        "/flows/bakery-main/edit", {"ops": [rename], "answer": "changes"}, whole["etag"]
    )
    small = await r.json()
    after = await tab.state()
    assert small["step_names"] == [s["name"] for s in after["steps"]]
    assert "main_menu" in small["step_names"] and "menu" not in small["step_names"]
    assert {"main_menu", "check_hours", "shop"} <= {s["name"] for s in small["steps_changed"]}
    assert merged(whole, small) == after
    # Asked without "answer", an edit's answer is the whole state.
    op = {"op": "set", "step": "orders", "path": ["ring_timeout"], "value": "20s"}
    r = await tab.post("/flows/bakery-main/edit", {"ops": [op]}, after["etag"])
    assert await r.json() == await tab.state()

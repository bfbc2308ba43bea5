"""The designer's prompts, new flows, copy and paste, sticky notes and people in a
real browser (Playwright driving Debian's chromium) against the real node app. Failures leave
screenshots in test-artifacts/ (the fixtures of test_designer_browser)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests import test_designer_browser as base
from tests.designerkit import ADMIN, PASSWORD, Designer, Opener, node, wait_flow

pytestmark = [pytest.mark.xdist_group("designer-browser"), pytest.mark.process]

# The same fixtures as the first browser tests: a node app, a chromium, logged-in pages.
d = base.d
browser = base.browser
open_page = base.open_page


async def test_prompts_play_and_a_recording_is_uploaded(
    d: Designer, open_page: Opener, tmp_path: Path
) -> None:
    page = await open_page()
    await page.get_by_role("tab", name="Prompts").click()
    beep = page.locator('[data-prompt="all/beep"] audio')
    await expect(beep).to_have_count(1)
    # The player gets the file from the node: its length is known once loaded.
    seconds = await beep.evaluate(
        """a => new Promise((ok, fail) => { a.onloadedmetadata = () => ok(a.duration);
             a.onerror = () => fail('cannot load ' + a.src); a.preload = 'metadata'; a.load(); })"""
    )
    assert 0 < seconds < 5
    wav = tmp_path / "closed.wav"
    subprocess.run(
        ["sox", "-n", "-r", "44100", "-c", "2", "-b", "16", str(wav), "synth", "2", "sine", "300"],
        check=True, capture_output=True,
    )  # fmt: skip
    await page.fill("#up-name", "closed_for_holidays")
    await page.select_option("#up-lang", "nl")
    await page.set_input_files("#up-file", str(wav))
    await page.get_by_role("button", name="Upload").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved closed_for_holidays (nl, 2 s)")
    await expect(page.locator('[data-prompt="nl/closed_for_holidays"]')).to_have_count(1)
    assert (d.flows_dir.parent / "ivr_prompts" / "nl" / "closed_for_holidays.wav").is_file()
    # A text file is refused with words, not a stack trace.
    (tmp_path / "notes.wav").write_text("not audio")
    await page.fill("#up-name", "notes")
    await page.set_input_files("#up-file", str(tmp_path / "notes.wav"))
    await page.get_by_role("button", name="Upload").click()
    await expect(page.get_by_role("alert")).to_contain_text("not a WAV file")


# "Call me" in the page places a real call through the edge to a sipp phone: tests/test_call_tree.py
# (it shares that module's node start-up).


async def test_a_new_flow_then_a_step_copied_into_it_from_another(
    d: Designer, open_page: Opener
) -> None:
    page = await open_page()
    await page.get_by_role("button", name="New flow").click()
    await page.fill("#new-name", "holiday-line")
    await page.fill("#new-desc", "Closed for the holidays")
    await page.keyboard.press("Enter")
    await expect(page.locator("select[aria-label=flow]")).to_have_value("holiday-line")
    await expect(node(page, "welcome")).to_be_visible()
    await expect(node(page, "goodbye")).to_be_visible()
    assert (d.flows_dir / "holiday-line.yaml").is_file()

    # Copy the bakery's voicemail step with the keyboard, paste it into the new flow.
    await page.select_option("select[aria-label=flow]", "bakery-main")
    await wait_flow(page, d, "bakery-main")
    await node(page, "voicemail").click()
    await page.locator(".react-flow__pane").focus()
    await page.keyboard.press("Control+c")
    await expect(page.get_by_role("status")).to_contain_text("Copied step voicemail")
    await page.select_option("select[aria-label=flow]", "holiday-line")
    await expect(node(page, "welcome")).to_be_visible()
    await page.keyboard.press("Control+v")
    await expect(node(page, "voicemail")).to_be_visible()
    # Its `then: bye` names a step this flow lacks: left open, and the person is told.
    await expect(page.get_by_role("status")).to_contain_text(
        "This flow has no step for next -> bye: left open, connect it on the canvas"
    )
    state = await page.evaluate(
        "() => fetch('/designer/api/flows/holiday-line').then(r => r.json())"
    )
    assert "voicemail:" in state["text"] and state["draft"] is not None
    assert "bye" not in state["text"].split("voicemail:")[1].replace("goodbye", "")
    # Pasted again: a second copy under a new name, never over the first.
    await page.get_by_role("button", name="Paste").click()
    await expect(node(page, "voicemail_copy")).to_be_visible()


async def note_beside(page: Page, step: str) -> None:
    """Waits until the one sticky note is drawn (not hidden for measuring) to the right of
    `step` and level with it. Both boxes are read in the same frame: two bounding_box calls
    could straddle the view being fitted or the note moving to its step."""
    await page.wait_for_function(
        """step => {
            const s = document.querySelector(`.react-flow__node[data-id="${step}"]`);
            const n = document.querySelector('.react-flow__node-note');
            if (!s || !n || getComputedStyle(n).visibility !== 'visible') return false;
            const a = s.getBoundingClientRect(), b = n.getBoundingClientRect();
            return b.x > a.x + a.width * 0.8 && Math.abs(b.y - a.y) < a.height;
        }""",
        arg=step,
        polling="raf",
    )


async def test_a_sticky_note_stays_beside_its_step_and_out_of_the_flow(
    d: Designer, open_page: Opener
) -> None:
    before = (d.flows_dir / "bakery.yaml").read_text()
    page = await open_page()
    await node(page, "voicemail").click()
    await page.get_by_role("button", name="Add note").click()
    note = page.get_by_role("textbox", name="sticky note")
    await note.fill("Marie checks these messages every morning")
    await page.locator(".react-flow__pane").click(position={"x": 5, "y": 5})
    layout = d.flows_dir / "bakery.layout.json"
    for _ in range(100):
        if layout.is_file() and "Marie" in layout.read_text():
            break
        await page.wait_for_timeout(100)
    assert '"step": "voicemail"' in layout.read_text()
    # Another person opening the flow sees it, beside the step.
    other = await open_page()
    shown = other.get_by_role("textbox", name="sticky note")
    await expect(shown).to_have_value("Marie checks these messages every morning")
    await note_beside(other, "voicemail")
    # The flow is not touched: no draft, the file as it was.
    assert (d.flows_dir / "bakery.yaml").read_text() == before
    await expect(other.locator(".status")).to_contain_text("published")
    # Renamed, the step keeps its note beside it.
    await node(other, "voicemail").click()
    await other.fill("#f-name", "messages")
    await other.press("#f-name", "Enter")
    await expect(node(other, "messages")).to_be_visible()
    assert '"step": "messages"' in layout.read_text()
    await expect(shown).to_have_value("Marie checks these messages every morning")
    await note_beside(other, "messages")
    # Undone, the step has its old name back and the note is beside it again.
    await other.get_by_role("button", name="Undo").click()
    await expect(node(other, "voicemail")).to_be_visible()
    await note_beside(other, "voicemail")
    assert '"step": "voicemail"' in layout.read_text()
    await other.get_by_role("button", name="remove the note").click()
    await expect(shown).to_have_count(0)


async def test_an_administrator_adds_someone_who_then_logs_in(
    d: Designer, open_page: Opener, browser: base.Browser
) -> None:
    page = await open_page(ADMIN)
    await page.get_by_role("button", name="People").click()
    dialog = page.get_by_role("dialog", name="people")
    await expect(dialog.locator('[data-user="manager@bakery.be"]')).to_contain_text("manager")
    await dialog.get_by_label("new person's e-mail").fill("baker@bakery.be")
    await dialog.get_by_label("new person's role").select_option("agent")
    await dialog.get_by_role("button", name="Add", exact=True).click()
    said = dialog.get_by_role("status")
    await expect(said).to_contain_text("Added baker@bakery.be: the password is ")
    password = (await said.inner_text()).split("the password is ")[1].split(" ")[0]
    await expect(dialog.locator('[data-user="baker@bakery.be"]')).to_contain_text("agent")
    # The new person logs in with it, read only; a manager sees no People button.
    other = await browser.new_page()
    try:
        await other.goto(d.url + "/designer/")
        await other.fill("#email", "baker@bakery.be")
        await other.fill("#password", password)
        await other.click("button[type=submit]")
        await expect(other.locator("header")).to_contain_text("read only")
        await expect(other.get_by_role("button", name="People")).to_have_count(0)
    finally:
        await other.close()
    assert PASSWORD not in password


async def test_test_callers_are_listed_from_the_try_panel(d: Designer, open_page: Opener) -> None:
    page = await open_page()
    await page.get_by_role("tab", name="Try it").click()
    await page.fill("#testers", "+32470111213, 0470 99 98 88")
    await page.get_by_role("button", name="Save test callers").click()
    await expect(page.locator(".testers [role=alert]")).to_contain_text("+32470999888")
    await page.fill("#testers", "+32470111213, +32470999888")
    await page.get_by_role("button", name="Save test callers").click()
    await expect(page.locator(".testers [role=status]")).to_contain_text(
        "+32470111213, +32470999888"
    )
    state = await page.evaluate(
        "() => fetch('/designer/api/flows/bakery-main/testers').then(r => r.json())"
    )
    assert state["callers"] == ["+32470111213", "+32470999888"]


async def test_discard_throws_the_draft_away_after_asking_and_undo_brings_it_back(
    d: Designer, open_page: Opener
) -> None:
    """With the keyboard alone: the button, a question in plain words with the safe answer
    focused, then the published flow again; Ctrl+Z brings the changes back."""
    page = await open_page()
    published = (d.flows_dir / "bakery.yaml").read_text()
    discard = page.get_by_role("button", name="Discard changes...")
    await expect(discard).to_be_disabled()  # nothing to discard: no draft
    await node(page, "staff").click()
    await page.locator("#f-on_busy").select_option("shop")
    await expect(page.locator(".status")).to_contain_text("draft by")
    await expect(discard).to_be_enabled()
    await base.tab_to(page, "button.discard", limit=120)
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="discard the draft")
    await expect(dialog).to_contain_text("Throw away the changes to bakery-main?")
    await expect(dialog).to_contain_text("1 step changed since it was published")
    await expect(dialog).to_contain_text("Calls are not affected")
    # The focus is on keeping them: Enter by mistake throws nothing away.
    await page.keyboard.press("Enter")
    await expect(dialog).to_have_count(0)
    await expect(page.locator(".status")).to_contain_text("draft by")
    await base.tab_to(page, "button.discard", limit=120)
    await page.keyboard.press("Enter")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")  # "Throw away the changes"
    await expect(page.locator(".notice")).to_contain_text("this is the published flow again")
    await expect(page.locator(".status")).to_contain_text("published")
    await expect(page.locator(".react-flow__edge[data-id='e:staff->shop']")).to_have_count(0)
    state = await page.evaluate(
        "() => fetch('/designer/api/flows/bakery-main').then(r => r.json())"
    )
    assert state["draft"] is None and state["text"] == published
    assert (d.flows_dir / "bakery.yaml").read_text() == published  # the file never changed
    await page.locator("body").focus()
    await page.keyboard.press("Control+z")
    await expect(page.locator(".status")).to_contain_text("draft by")
    await expect(page.locator(".react-flow__edge[data-id='e:staff->shop']")).to_have_count(1)

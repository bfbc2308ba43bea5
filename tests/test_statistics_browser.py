"""The console's Statistics view in a real browser (Playwright driving Debian's chromium)
against a running node with its Kamailio edge and workers, fed by real calls from sipp: the
chart of the period shows the scripted calls, the live tile moves when a call starts and ends,
and an agent has no Statistics view."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from flexvoice.accounts import set_designer
from flexvoice.storage.open import open_database
from flexvoice.users import create_user
from tests.conftest import free_port_range
from tests.designerkit import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, PASSWORD, safe_name
from tests.nodekit import TrunkNode, launch_trunk_node
from tests.sipptool import Uas, run_uac_async
from tests.statskit import LINE, STATS_NODE

pytestmark = [
    pytest.mark.sip,
    pytest.mark.edge,
    pytest.mark.process,
    pytest.mark.xdist_group("sipnode"),
]

ANALYST, AGENT = "analyst@shop.be", "agent@shop.be"
TIMEOUT_MS = 30000
expect.set_options(timeout=TIMEOUT_MS)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def log_in(browser: Browser, url: str, email: str, errors: list[str]) -> Page:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(url + "/designer/")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_selector("header")
    return page


async def test_statistics_page_follows_real_calls_and_is_not_for_agents(tmp_path: Path) -> None:
    trunk_port = free_port_range(1)
    node: TrunkNode = await asyncio.to_thread(launch_trunk_node, tmp_path, trunk_port, **STATS_NODE)
    edge, url = node.edge, f"http://127.0.0.1:{node.port}"
    errors: list[str] = []
    pages: list[Page] = []
    agents: Uas | None = None
    try:
        conn = open_database(node.db)
        try:
            set_designer(conn, "shop", True)
            create_user(conn, ANALYST, "shop", "analyst", PASSWORD)
            create_user(conn, AGENT, "shop", "agent", PASSWORD)
        finally:
            conn.close()

        # The script: the desk answers key 1 and the caller talks 2 s; a caller leaves the
        # menu without a key after 2 s.
        agents = Uas("uas_agents.xml", trunk_port, calls=3)
        answered = await run_uac_async("uac_key.xml", edge, LINE, hold_ms=2000, keys={"digit": "1"})
        assert answered.successful == 1, answered.output
        left = await run_uac_async("uac_call.xml", edge, LINE, hold_ms=2000)
        assert left.successful == 1, left.output

        async with chromium() as browser:
            try:
                await follow(browser, url, edge, errors, pages)
            except BaseException:
                ARTIFACTS.mkdir(exist_ok=True)
                for i, page in enumerate(pages):
                    with contextlib.suppress(Exception):
                        name = safe_name(f"statistics-browser-{i}.png")
                        await page.screenshot(path=str(ARTIFACTS / name), full_page=True)
                raise
        if errors:
            raise AssertionError(f"JavaScript errors on the page: {errors}")
    finally:
        if agents is not None:
            agents.stop()
        await asyncio.to_thread(node.stop)


async def follow(
    browser: Browser, url: str, edge: str, errors: list[str], pages: list[Page]
) -> None:
    """The analyst's page through the script, then the agent's."""
    page = await log_in(browser, url, ANALYST, errors)
    pages.append(page)
    await page.get_by_role("button", name="Statistics").click()
    assert page.url.endswith("/designer/?view=statistics")
    await expect(page.locator("[data-live-state]")).to_have_text("live")
    calls_up = page.locator('[data-value="calls-up"]')
    await expect(calls_up).to_have_text("0")
    hours = page.locator('[data-summary="hours"]')
    await expect(hours).to_contain_text("answered 1")
    await expect(hours).to_contain_text("abandoned 1")
    await expect(page.locator("[data-totals]")).to_contain_text("2 calls")
    funnel = page.locator('[data-summary="funnel"]')
    await expect(funnel).to_contain_text("stats · menu: 2 reached, 1 hung up there")
    # The chart is drawn, not only described: its canvas has painted pixels.
    painted = await page.evaluate(
        """() => { const c = document.querySelector('[data-chart="hours"] canvas');
           const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
           let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"""
    )
    assert painted > 1000, painted
    table = page.locator(".stats-table tbody tr")
    await expect(table).to_have_count(1)
    await expect(table.first).to_contain_text(LINE)
    async with page.expect_download() as download:
        await page.click("[data-csv]")
    csv_text = Path(await (await download.value).path()).read_text()
    assert csv_text.splitlines()[0].startswith("number,offered,answered")
    assert f"{LINE},2,1,1" in csv_text

    # A real call starts: the tile goes to 1 while it lasts, back to 0 after, and the
    # period's chart counts it once it ended.
    caller = asyncio.create_task(run_uac_async("uac_call.xml", edge, LINE, hold_ms=4000))
    await expect(calls_up).to_have_text("1")
    await expect(page.locator('[data-tile="calls-up"] li')).to_contain_text(LINE)
    await expect(calls_up).to_have_text("0")
    assert (await caller).successful == 1
    # The period's totals, not an hour's: a run across a full hour puts the calls in two
    # hours of the chart ("03:00: answered 1, abandoned 1; 04:00: abandoned 1", seen in CI).
    await expect(page.locator("[data-totals]")).to_contain_text("2 abandoned")
    await expect(page.locator('[data-value="per-minute"]')).to_have_text("3")

    agent = await log_in(browser, url, AGENT, errors)
    pages.append(agent)
    await agent.wait_for_selector(".react-flow__node")
    assert await agent.get_by_role("button", name="Statistics").count() == 0
    await agent.goto(url + "/designer/?view=statistics")
    await agent.wait_for_selector(".react-flow__node")
    assert await agent.locator(".statistics").count() == 0
    status = await agent.evaluate(
        "() => fetch('/designer/api/statistics/live').then(r => r.status)"
    )
    assert status == 403

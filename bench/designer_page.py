"""One side of `./run bench designer`: the designer of one checkout (its node, its API, its
built page) driven in headless Chromium through Playwright, in a process of its own so that
two checkouts (this one and main) are measured the same way in one run.

    python bench/designer_page.py CODE_DIR ROUNDS   -> one JSON line of figures

The node runs in this process; its check of each edit is timed in its thread.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

STEPS = 200


async def _open(page: Any, flow: str) -> tuple[float, int]:
    started = time.perf_counter()
    await page.select_option("select[aria-label=flow]", flow)
    # Laid out and drawn: the page has fitted the view after the layout, and every node in
    # view is on the canvas with its size measured (React Flow draws only what is in view).
    await page.wait_for_function(
        """f => window.__designer && window.__designer.flow === f && window.__designer.laidOutAt
             && document.querySelectorAll('.react-flow__node').length > 0
             && [...document.querySelectorAll('.react-flow__node')]
                  .every(e => e.style.visibility !== 'hidden')""",
        arg=flow,
        polling="raf",
        timeout=60000,
    )
    took = (time.perf_counter() - started) * 1000
    drawn: int = await page.evaluate("() => document.querySelectorAll('.react-flow__node').length")
    return took, drawn


# In the page: when Enter went down, when the badge changed in the DOM, and the next frame
# after that (style, layout and paint of the change done), without the driver's round trips.
_WATCH = """([s, want]) => {
    const b = window.__bench = {key: 0, badge: 0, frame: 0};
    document.querySelector('#f-ring_timeout').addEventListener('keydown', (e) => {
        if (e.key === 'Enter') b.key = performance.now(); }, {capture: true, once: true});
    const seen = new MutationObserver(() => {
        if (b.badge || !!document.querySelector(s) !== want) return;
        b.badge = performance.now();
        seen.disconnect();
        requestAnimationFrame(() => { b.frame = performance.now(); });
    });
    seen.observe(document.body, {subtree: true, childList: true, attributes: true});
}"""


async def _edit(page: Any, value: str, want_badge: bool) -> dict[str, float]:
    field = page.locator("#f-ring_timeout")
    await field.fill(value)
    badge = '.react-flow__node[data-id="s2"] [data-badge=error]'
    await page.evaluate(_WATCH, [badge, want_badge])
    started = time.perf_counter()
    await field.press("Enter")
    await page.wait_for_function("() => window.__bench.frame > 0", polling="raf")
    took = (time.perf_counter() - started) * 1000
    # The request as the browser timed it (Resource Timing): sent until the first byte of
    # the answer is the node's whole handling (and loopback), the rest is the page's.
    seen: dict[str, float] = await page.evaluate(
        """() => { const r = performance.getEntriesByType('resource')
                     .filter(e => e.name.endsWith('/edit')).pop();
                   return {answer: window.__designer.editMs, js: window.__designer.graphMs || 0,
                           page: window.__bench.frame - window.__bench.key,
                           node: r ? r.responseStart - r.requestStart : 0}; }"""
    )
    return {"edit": took, **seen}


class _Checks:
    """Wall and CPU time of the node's checking thread per edit (apply and check)."""

    def __init__(self, real: Any) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.real = real

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return self.real(*args, **kwargs)
        finally:
            self.wall.append((time.perf_counter() - started) * 1000)
            self.cpu.append((time.thread_time() - cpu) * 1000)


async def run(rounds: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    from bench.designer_flow import generated_flow
    from flexvoice.flows import designview
    from tests.designerkit import CHROMIUM, CHROMIUM_ARGS, MANAGER, PASSWORD, running_designer

    out: dict[str, Any] = {"small": [], "big": [], "edit": [], "page": [], "answer": [], "js": []}
    out |= {"node": [], "sent": []}
    with tempfile.TemporaryDirectory() as tmp:
        async with running_designer(Path(tmp)) as d, async_playwright() as p:
            (d.flows_dir / "big.yaml").write_text(generated_flow(STEPS))
            d.runtime.scan()
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            await page.goto(d.url + "/designer/")
            await page.fill("#email", MANAGER)
            await page.fill("#password", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_selector(".react-flow__node")
            for _ in range(rounds):
                out["small"].append((await _open(page, "bakery-main"))[0])
                took, out["drawn"] = await _open(page, "big")
                out["big"].append(took)
            sizes: list[int] = []

            async def sized(response: Any) -> None:
                if response.url.endswith("/edit"):
                    sizes.append(len(await response.body()))
                    out["sent"].append(len(response.request.post_data or ""))

            page.on("response", sized)
            # s2 is a dial: break its ring_timeout, then mend it, measuring both.
            await page.locator('.react-flow__node[data-id="s2"]').click()
            await page.wait_for_selector("#f-ring_timeout")
            checks = _Checks(designview.edited)
            with mock.patch.object(designview, "edited", checks):
                for i in range(rounds):
                    for value, bad in (("soon", True), (f"{20 + i}s", False)):
                        for key, ms in (await _edit(page, value, bad)).items():
                            out[key].append(ms)
            await browser.close()
            out["bytes"] = sizes
            out["check_wall"], out["check_cpu"] = checks.wall, checks.cpu
    out["load"] = os.getloadavg()
    return out


if __name__ == "__main__":
    code = Path(sys.argv[1]).resolve()
    sys.path[:1] = [str(code)]  # that checkout's flexvoice, tests and bench, not this one's
    os.chdir(code)
    import logging

    logging.getLogger("flexvoice").setLevel(logging.WARNING)
    print(json.dumps(asyncio.run(run(int(sys.argv[2])))))

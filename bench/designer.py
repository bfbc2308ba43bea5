"""Designer benchmark: a generated 200-step flow opened and laid out in headless chromium, and
an edit validated with its badge shown, against the issue's budgets (1 s, 100 ms); the
bakery's 9-step flow opened beside it as the baseline. Then the node's work for one edit, the
old path (PyYAML's pure-Python parser, ruamel's round trip for every edit) beside the new one
(libyaml, the value spliced into the text), in CPU milliseconds, which the machine's load
does not inflate the way it inflates wall-clock times. `python -m bench designer [--quick]`.

Times in the browser are taken from the test driver (Playwright), so they include its round
trips: the page is at least this fast. Each figure is the median of several rounds.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

from playwright.async_api import Page, async_playwright

from bench.designer_flow import generated_flow
from flexvoice import offloop, yamlsrc
from flexvoice.flows import designview, yamledit, yamlsplice
from flexvoice.flows.validate import validate_text
from tests.conftest import REPO
from tests.designerkit import CHROMIUM, CHROMIUM_ARGS, MANAGER, PASSWORD, running_designer

STEPS = 200
OPEN_BUDGET_MS = 1000.0
EDIT_BUDGET_MS = 100.0


async def _open(page: Page, flow: str) -> tuple[float, int]:
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


async def _edit(page: Page, step: str, value: str, want_badge: bool) -> tuple[float, float, float]:
    field = page.locator("#f-ring_timeout")
    await field.fill(value)
    cpu = time.process_time()  # the node runs in this process (and the driver's client)
    started = time.perf_counter()
    await field.press("Enter")
    badge = f'.react-flow__node[data-id="{step}"] [data-badge=error]'
    await page.wait_for_function(
        "([s, want]) => !!document.querySelector(s) === want",
        arg=[badge, want_badge],
        polling="raf",
    )
    took = (time.perf_counter() - started) * 1000
    cpu_ms = (time.process_time() - cpu) * 1000
    server: float = await page.evaluate("() => window.__designer.editMs")
    return took, server, cpu_ms


class _Checks:
    """Wall and CPU time of the node's checking thread per edit (apply and check)."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.real = designview.edited

    def __call__(self, *args: Any) -> Any:
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return self.real(*args)
        finally:
            self.wall.append((time.perf_counter() - started) * 1000)
            self.cpu.append((time.thread_time() - cpu) * 1000)


async def _run(rounds: int) -> None:
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
            small: list[float] = []
            big: list[float] = []
            layout: list[float] = []
            for _ in range(rounds):
                small.append((await _open(page, "bakery-main"))[0])
                took, drawn = await _open(page, "big")
                big.append(took)
                layout.append(await page.evaluate("() => window.__designer.layoutMs"))
            # s2 is a dial: break its ring_timeout, then mend it, measuring both.
            await page.locator('.react-flow__node[data-id="s2"]').click()
            await page.wait_for_selector("#f-ring_timeout")
            edits: list[float] = []
            server: list[float] = []
            cpu: list[float] = []
            low: list[float] = []
            checks, low_checks = _Checks(), _Checks()
            for i in range(rounds):
                # Each round also edits the old way, checks in the nice-10 parsing threads
                # (no document counts as small), for the figure beside it in the same run.
                with (
                    mock.patch.object(offloop, "INTERACTIVE_MAX_BYTES", -1),
                    mock.patch.object(designview, "edited", low_checks),
                ):
                    for value, bad in (("soon", True), (f"{40 + i}s", False)):
                        low.append((await _edit(page, "s2", value, bad))[0])
                with mock.patch.object(designview, "edited", checks):
                    for value, bad in (("soon", True), (f"{20 + i}s", False)):
                        took, fetch, cpu_ms = await _edit(page, "s2", value, bad)
                        edits.append(took)
                        server.append(fetch)
                        cpu.append(cpu_ms)
            await browser.close()
    o_small, o_big = statistics.median(small), statistics.median(big)
    lay = statistics.median(layout)
    e, s, c = statistics.median(edits), statistics.median(server), statistics.median(cpu)
    print(f"designer  open + lay out bakery-main (9 steps)      {o_small:7.0f} ms   (baseline)")
    print(
        f"designer  open + lay out generated ({STEPS} steps)     {o_big:7.0f} ms   "
        f"{o_big / o_small:5.1f}x baseline, {o_big / OPEN_BUDGET_MS:4.2f} of the 1 s budget"
    )
    print(
        f"          of which the layout of all {STEPS} steps {lay:.0f} ms; "
        f"{drawn} steps drawn (those in view)"
    )
    print(
        f"designer  edit -> validated, badge drawn ({STEPS} steps) {e:6.0f} ms   "
        f"{e / EDIT_BUDGET_MS:4.2f} of the 100 ms budget (request alone {s:.0f} ms, "
        f"node CPU {c:.0f} ms)"
    )
    med = statistics.median
    print(
        f"          the node's check of an edit: {med(checks.wall):.0f} ms in its thread for "
        f"{med(checks.cpu):.0f} ms of CPU at the loop's priority; old, nice 10: "
        f"{med(low_checks.wall):.0f} ms for {med(low_checks.cpu):.0f} ms "
        f"(edit -> badge {med(low):.0f} ms, {med(low) / e:.2f}x the new)"
    )
    print(f"          in the browser (after the answer, until the badge is seen): {e - s:.0f} ms")
    load = os.getloadavg()[0]
    print(
        f"          medians of {rounds} opens each and {2 * rounds} edits, headless chromium; "
        f"load average {load:.1f} on {os.cpu_count()} cores at the end"
    )


def _cpu_ms(fn: Callable[[], object], rounds: int, setup: Callable[[], object] = list) -> float:
    times = []
    for _ in range(rounds):
        setup()
        started = time.thread_time()
        fn()
        times.append((time.thread_time() - started) * 1000)
    return statistics.median(times)


def _node_work(rounds: int) -> None:
    """One edit's work on the node (change a dial's timeout, check the flow), old and new."""
    text = generated_flow(STEPS)
    prompts = REPO / "ivr_prompts"
    op = [{"op": "set", "step": "s2", "path": ["ring_timeout"], "value": "33s"}]

    def parse() -> object:
        return validate_text(text, "flows/big.yaml", prompts)

    # Each edit starts from the text the one before made, as the page's edits do.
    chain = {"text": text, "n": 0}

    def edit() -> object:
        chain["n"] += 1
        ops = [{**op[0], "value": f"{30 + chain['n'] % 50}s"}]
        chain["text"] = yamledit.apply(chain["text"], ops)
        return chain["text"]

    def warm() -> None:
        yamledit._DOCS.clear()
        yamledit.warm(chain["text"])  # the page's open reads the tree before the first edit

    new_parse, new_edit = _cpu_ms(parse, rounds), _cpu_ms(edit, rounds, warm)
    with (
        mock.patch.object(yamlsrc, "_FAST_LOADER", yamlsrc._Loader),
        mock.patch.object(yamlsplice, "set_scalars", lambda text, ops: None),
    ):
        yamlsplice._TREES.clear()
        old_parse, old_edit = _cpu_ms(parse, rounds), _cpu_ms(edit, rounds, warm)
    read = _cpu_ms(lambda: yamledit.load(text), rounds)
    print(f"node      one edit of the {STEPS}-step flow, CPU ms      old path   new path   ratio")
    print(
        f"          parse and validate the draft       {old_parse:9.1f}  {new_parse:9.1f}  "
        f"{old_parse / new_parse:5.1f}x"
    )
    print(
        f"          apply the edit (the new text)      {old_edit:9.1f}  {new_edit:9.1f}  "
        f"{old_edit / new_edit:5.1f}x"
    )
    print(f"          (ruamel's read of the text, once per opened flow, not per edit: {read:.0f})")


def main(argv: list[str]) -> int:
    import logging

    logging.getLogger("flexvoice").setLevel(logging.WARNING)
    rounds = 3 if "--quick" in argv else 7
    asyncio.run(_run(rounds))
    _node_work(rounds)
    return 0

"""Designer benchmark: a generated 200-step flow opened and laid out in headless Chromium, and
an edit validated with its badge shown, against the issue's budgets (1 s, 100 ms), with the
bakery's 9-step flow opened beside it; this checkout and main side by side in one run (each
in its own process: bench/designer_page.py), with the ratio. Then the node's work for one
edit, before and now (the whole flow checked again / only what the edit changed; PyYAML's
pure-Python parser / libyaml; ruamel's round trip / the value spliced into the text), in CPU
milliseconds, which the machine's load inflates less than wall-clock times. The load average
is printed at the start, after each side's pass and at the end: compare runs at like loads.

    ./run bench designer [--quick] [--against REF_OR_DIR]   (default: main; ~1-3 min)

The other side is `git archive`d into a temporary folder and its page built there with this
checkout's node_modules (the same lockfile). An edit is timed in the page (from Enter to the
frame after the badge changed) and by the test driver (with its round trips); opening a flow
by the driver only, so the page is at least that fast.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

from bench.designer_flow import generated_flow
from flexvoice import yamlsrc
from flexvoice.flows import yamledit, yamlsplice
from flexvoice.flows.recheck import recheck
from flexvoice.flows.validate import validate_text
from tests.conftest import REPO

STEPS = 200
OPEN_BUDGET_MS = 1000.0
EDIT_BUDGET_MS = 100.0


def _checkout(ref: str, tmp: Path) -> Path | None:
    """A folder holding `ref`'s code with its page built (None, said, when it cannot be)."""
    if Path(ref).is_dir():
        return Path(ref).resolve()
    dest = tmp / "against"
    dest.mkdir()
    try:
        archive = subprocess.run(
            ["git", "archive", ref], cwd=REPO, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        (dest / "web" / "node_modules").symlink_to(REPO / "web" / "node_modules")
        subprocess.run(["npm", "run", "build"], cwd=dest / "web", check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"designer  cannot build {ref} to compare with ({exc}); this checkout alone")
        return None
    return dest


def _side(code: Path, rounds: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "designer_page.py"), str(code), str(rounds)],
        cwd=code, capture_output=True, text=True, check=True,
    )  # fmt: skip
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def _pages(rounds: int, against: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        other = _checkout(against, Path(tmp))
        sides = {"this": REPO} | ({against: other} if other is not None else {})
        pooled: dict[str, dict[str, list[float]]] = {name: {} for name in sides}
        loads: list[str] = []
        # Alternating, so that a change of the machine's load hits both; the second pass in
        # the other order (this checkout ran first in both passes before: its opening was
        # slower than main's in two runs of three, and as fast on a quiet machine).
        for order in (list(sides), list(sides)[::-1]):
            for name in order:
                code = sides[name]
                got = _side(code, rounds)
                loads.append(f"{name} {'/'.join(f'{x:.1f}' for x in got.pop('load'))}")
                pooled[name]["drawn"] = [got.pop("drawn")]
                for key, values in got.items():
                    pooled[name].setdefault(key, []).extend(values)
    med = {n: {k: statistics.median(v) for k, v in f.items()} for n, f in pooled.items()}
    for m in med.values():
        m["browser"] = m["page"] - m["answer"]
    names = list(sides)
    rows = [
        ("open + lay out bakery-main (9 steps), ms", "small", ""),
        (f"open + lay out the generated {STEPS} steps, ms", "big", f"budget {OPEN_BUDGET_MS:.0f}"),
        ("edit a field -> validated, badge drawn, ms", "page", f"budget {EDIT_BUDGET_MS:.0f}"),
        ("  the same, seen by the test driver, ms", "edit", "its round trips too"),
        ("  the answer (request until the page has it), ms", "answer", ""),
        ("    of which the node's whole handling, ms", "node", "sent -> first byte"),
        ("  then in the browser until the badge is drawn, ms", "browser", ""),
        ("  of which JavaScript building the graph, ms", "js", ""),
        ("  the request's size, bytes", "sent", "no copy of the flow"),
        ("  the answer's size, bytes", "bytes", ""),
        ("  the node's check of the edit, thread wall ms", "check_wall", ""),
        ("  the node's check of the edit, thread CPU ms", "check_cpu", ""),
    ]
    print(f"designer  {'':50s}" + "".join(f"{n:>10s}" for n in names)
          + (f"{'this/' + names[1]:>12s}" if len(names) > 1 else ""))  # fmt: skip
    for words, key, note in rows:
        line = f"          {words:50s}" + "".join(f"{med[n][key]:10.1f}" for n in names)
        if len(names) > 1 and med[names[1]][key]:
            line += f"{med['this'][key] / med[names[1]][key]:12.2f}"
        print(line + (f"   ({note})" if note else ""))
    print(
        f"          medians of {2 * rounds} opens and {4 * rounds} edits per side, headless "
        f"chromium, {int(med['this']['drawn'])} steps drawn (those in view), {os.cpu_count()} "
        f"cores; load average (1/5/15 min) after each pass: {'; '.join(loads)}"
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

    # The check of an edit's result from the check of the text before (flows/recheck.py).
    base = validate_text(text, "flows/big.yaml", prompts)
    edits = iter(range(10**6))

    def recheck_edit() -> object:
        ops = [{**op[0], "value": f"{next(edits) % 90 + 1}m"}]
        return recheck(base, text, yamledit.apply(text, ops), prompts)

    def whole_edit() -> object:
        ops = [{**op[0], "value": f"{next(edits) % 90 + 1}m"}]
        return validate_text(yamledit.apply(text, ops), "flows/big.yaml", prompts)

    whole, part = _cpu_ms(whole_edit, rounds), _cpu_ms(recheck_edit, rounds)
    new_parse, new_edit = _cpu_ms(parse, rounds), _cpu_ms(edit, rounds, warm)
    with (
        mock.patch.object(yamlsrc, "_FAST_LOADER", yamlsrc._Loader),
        mock.patch.object(yamlsplice, "set_scalars", lambda text, ops: None),
    ):
        old_parse, old_edit = _cpu_ms(parse, rounds), _cpu_ms(edit, rounds, warm)
    read = _cpu_ms(lambda: yamledit.load(text), rounds)
    rows = [
        ("set a field and check: the whole flow / what changed", whole, part),
        ("parse and validate the draft: PyYAML / libyaml", old_parse, new_parse),
        ("apply the edit: ruamel / the value spliced", old_edit, new_edit),
    ]
    head = f"node      one edit of the {STEPS}-step flow, CPU ms"
    print(f"{head:64s}{'before':>10s}{'now':>10s}{'now/before':>12s}")
    for words, before, now in rows:
        print(f"          {words:54s}{before:10.1f}{now:10.1f}{now / before:12.2f}")
    print(f"          (ruamel's read of the text, once per opened flow, not per edit: {read:.0f})")


def main(argv: list[str]) -> int:
    import logging

    logging.getLogger("flexvoice").setLevel(logging.WARNING)
    rounds = 2 if "--quick" in argv else 4
    against = argv[argv.index("--against") + 1] if "--against" in argv else "main"
    print(f"designer  uptime at the start: {_uptime()}")
    _pages(rounds, against)
    _node_work(2 * rounds)
    print(f"designer  uptime at the end: {_uptime()}")
    return 0


def _uptime() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{time.strftime('%H:%M:%S')} load average {one:.2f}, {five:.2f}, {fifteen:.2f}"

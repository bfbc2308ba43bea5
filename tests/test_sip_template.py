"""The pool's way back when the pre-forked worker template fails: workers start as fresh
interpreters (`python -m flexvoice.sip.worker --index N ...`) and take calls as before."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from flexvoice.sip.leg import SipLeg
from flexvoice.sip.template import Template
from tests.poolkit import PoolHarness, stay
from tests.sipptool import run_uac_async

pytestmark = pytest.mark.sip


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def forked(pid: int) -> bool:
    """A worker forked from the template keeps the template's command line."""
    return "--template" in cmdline(pid)


async def answer(leg: SipLeg) -> None:
    await leg.answer()
    await stay(leg)


async def one_call(h: PoolHarness, port: int) -> None:
    result = await run_uac_async("uac_call.xml", f"127.0.0.1:{port}", "+3225551234", hold_ms=200)
    assert (result.successful, result.failed) == (1, 0), result.output


async def test_when_the_template_cannot_start_workers_are_plain_subprocesses(
    make_pool: Callable[..., Awaitable[PoolHarness]], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def cannot_start(self: Template) -> None:
        raise OSError(2, "No such file or directory")  # what a failed exec raises

    monkeypatch.setattr(Template, "start", cannot_start)
    h = await make_pool(answer, count=2)
    assert h.pool.template is None and h.pool.up == 2
    for w in h.pool.workers:
        assert w.proc is not None and not forked(w.proc.pid)
        assert "--index" in cmdline(w.proc.pid)
        await one_call(h, w.port)


async def test_a_dead_template_leaves_its_workers_running_and_replacements_are_subprocesses(
    make_pool: Callable[..., Awaitable[PoolHarness]],
) -> None:
    h = await make_pool(answer, count=2)
    template = h.pool.template
    assert template is not None and template.proc is not None
    first, second = h.pool.workers
    assert first.proc is not None and forked(first.proc.pid)
    os.kill(template.proc.pid, signal.SIGKILL)
    for _ in range(100):
        if not template.alive:
            break
        await asyncio.sleep(0.05)
    assert not template.alive
    # The forked workers outlive their parent and still take calls.
    await one_call(h, second.port)
    assert h.pool.up == 2
    # One dies: it is replaced by a fresh interpreter, which takes calls too.
    os.kill(first.proc.pid, signal.SIGKILL)
    for _ in range(200):
        proc = first.proc
        if first.up and proc is not None and proc.returncode is None and not forked(proc.pid):
            break
        await asyncio.sleep(0.05)
    assert first.up and first.proc is not None and not forked(first.proc.pid)
    await one_call(h, first.port)
    assert h.pool.up == 2

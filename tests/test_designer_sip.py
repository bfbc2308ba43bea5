"""Publish from the designer, then a real call through sipp and a pjsua2 worker takes the new
path: the designer's publication is what the runtime serves."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from flexvoice.flows.deps import FlowDeps
from flexvoice.sip.leg import SipLeg
from flexvoice.sip.pool import PoolSettings, WorkerPool
from tests.conftest import free_port_range
from tests.designerkit import MANAGER, Browser, running_designer
from tests.fakeleg import Observer, Sink
from tests.sipptool import run_uac_async

pytestmark = [pytest.mark.sip, pytest.mark.xdist_group("designer")]


async def test_a_published_change_is_the_path_the_next_call_takes(tmp_path: Path) -> None:
    observer, sink = Observer(), Sink()
    deps = FlowDeps(
        usage_sink=sink,
        observer=observer,
        recordings_dir=tmp_path / "recordings",
        tts_cache_dir=tmp_path / "tts",
    )
    async with running_designer(tmp_path, deps) as d:
        tab = Browser(d)
        try:
            await tab.login(MANAGER)
            state = await tab.state()
            # Open or closed, the bakery now takes a message (whatever the hour of the test).
            r = await tab.post(
                "/flows/bakery-main/edit",
                {"ops": [{"op": "set", "step": "check_hours", "path": ["when_open"],
                          "value": "closed"}]},
                state["etag"],
            )  # fmt: skip
            state = await r.json()
            r = await tab.post("/flows/bakery-main/publish", {"message": "holiday"}, state["etag"])
            assert r.status == 200, await r.text()
        finally:
            await tab.close()
        assert "when_open: closed" in (d.flows_dir / "bakery.yaml").read_text()

        legs: list[SipLeg] = []
        reasons: list[str] = []

        async def on_incoming(leg: SipLeg) -> None:
            legs.append(leg)
            leg.account = "acme"
            reasons.append(await d.runtime.start_call(leg, "bakery-main", account="acme"))

        settings = PoolSettings(
            count=1,
            base_port=free_port_range(1),
            rtp_base=random.randrange(30000, 50000, 2),
            trunk="127.0.0.1:5",
        )
        pool = WorkerPool(settings, on_incoming)
        await pool.start()
        try:
            target = f"127.0.0.1:{settings.base_port}"
            result = await run_uac_async("uac_ivr.xml", target, "+3225551001", hold_ms=5000)
            for _ in range(100):  # the flow finishes after sipp's BYE
                if reasons and all(leg.ended for leg in legs):
                    break
                await asyncio.sleep(0.05)
        finally:
            await pool.stop(grace=0)
    assert result.successful == 1, result.output
    assert observer.steps()[:3] == ["check_hours", "closed", "voicemail"], observer.steps()

"""The flow runtime as a node component: started with the app, stopped with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from flexvoice.appkeys import FLOW_DEPS, FLOWS
from flexvoice.config import load_config
from flexvoice.flows.interpreter import FlowDeps
from flexvoice.node.assembly import build_app
from flexvoice.node.flows import flows_component
from tests.conftest import write_node_config


async def test_component_loads_the_demo_flows(tmp_path: Path) -> None:
    cfg = load_config(write_node_config(tmp_path), environ={})
    deps = FlowDeps()

    async def test_deps(app: web.Application) -> AsyncIterator[None]:
        app[FLOW_DEPS] = deps
        yield

    app = build_app(cfg, [test_deps, flows_component])
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        runtime = app[FLOWS]
        assert runtime.deps is deps
        assert sorted(runtime.flows) == [
            "after-hours",
            "bakery-main",
            "bilingual-line",
            "office-continuity",
            "support-line",
        ]
        assert deps.recordings_dir == tmp_path / "recordings"
    finally:
        await runner.cleanup()
    assert runtime._watcher is not None and runtime._watcher.done()

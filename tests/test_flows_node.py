"""The flow runtime as a node component: started with the app, stopped with it."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from flexvoice.config import load_config
from flexvoice.flows.interpreter import FlowDeps
from flexvoice.flows.node import FLOW_DEPS, FLOW_RUNTIME, flows_component
from flexvoice.server import CONFIG
from tests.conftest import write_node_config


async def test_component_loads_the_demo_flows(tmp_path: Path) -> None:
    cfg = load_config(write_node_config(tmp_path), environ={})
    app = web.Application()
    app[CONFIG] = cfg
    deps = FlowDeps()
    app[FLOW_DEPS] = deps
    app.cleanup_ctx.append(flows_component)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        runtime = app[FLOW_RUNTIME]
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

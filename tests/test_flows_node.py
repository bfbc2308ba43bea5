"""The flow runtime as a node component: started with the app, stopped with it."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

from flexvoice.appkeys import FLOW_DEPS, FLOWS
from flexvoice.config import Config, load_config
from flexvoice.flows.deps import FlowDeps
from flexvoice.node.assembly import build_app
from flexvoice.node.flows import flows_component
from tests.conftest import REPO, write_node_config

DEMO_FLOWS = {"after-hours", "bakery-main", "bilingual-line", "office-continuity", "support-line"}


@asynccontextmanager
async def flows_node(cfg: Config, deps: FlowDeps) -> AsyncIterator[web.Application]:
    """An app of the flow runtime alone (with `deps` as its dependencies), started."""

    async def test_deps(app: web.Application) -> AsyncIterator[None]:
        app[FLOW_DEPS] = deps
        yield

    app = build_app(cfg, [test_deps, flows_component])
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        yield app
    finally:
        await runner.cleanup()


async def test_component_loads_the_demo_flows(tmp_path: Path) -> None:
    cfg = load_config(write_node_config(tmp_path), environ={})
    deps = FlowDeps()
    async with flows_node(cfg, deps) as app:
        runtime = app[FLOWS]
        assert runtime.deps is deps
        # The demo flows at least: a business adds its own to flows/ as the README says.
        assert set(runtime.flows) >= DEMO_FLOWS
        assert deps.recordings_dir == tmp_path / "recordings"
    assert runtime._watcher is not None and runtime._watcher.done()


async def test_a_business_flow_added_to_flows_breaks_no_demo_test(tmp_path: Path) -> None:
    """flows/ with the demo flows plus one of the business's own: the component still loads
    every demo flow and the added one (the demo tests check inclusion, not an exact list)."""
    flows = tmp_path / "flows"
    shutil.copytree(REPO / "flows", flows)
    (flows / "my-shop.yaml").write_text(
        "flow: my-shop\nstart: hi\nsteps:\n  hi:\n    play: {say: Hello}\n"
    )
    path = write_node_config(tmp_path)
    path.write_text(path.read_text().replace(f"flows: {REPO}/flows", f"flows: {flows}"))
    cfg = load_config(path, environ={})
    async with flows_node(cfg, FlowDeps()) as app:
        loaded = set(app[FLOWS].flows)
        assert loaded >= DEMO_FLOWS and "my-shop" in loaded

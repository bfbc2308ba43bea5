"""The edge in the node: `flexvoice edge check|status`, and the serve component's restarts."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from aiohttp import web

from flexvoice.appkeys import EDGE, STATUS
from flexvoice.node.assembly import build_app
from flexvoice.node.edge import edge_component
from flexvoice.node.shared import trunks_component
from flexvoice.node.status import ServeOptions
from tests.conftest import REPO, run_cli, write_node_config
from tests.edge_support import edge_config, group_alive, running_edge

pytestmark = [pytest.mark.edge, pytest.mark.xdist_group("edge")]


def test_edge_check_accepts_the_shipped_configuration(tmp_path: Path) -> None:
    config = write_node_config(tmp_path)
    done = run_cli("--config", str(config), "edge", "check")
    assert done.returncode == 0, done.stderr
    assert "is valid (listen 127.0.0.1:" in done.stdout
    assert "2 workers, 1 trunk, ACL on" in done.stdout
    generated = (tmp_path / "var" / "edge" / "check" / "kamailio.cfg").read_text()
    assert "duid=w0" not in generated  # workers are in the dispatcher list, not the cfg
    listing = (tmp_path / "var" / "edge" / "check" / "dispatcher.list").read_text()
    assert "duid=w0;maxload=4" in listing and "duid=w1;maxload=4" in listing


def test_edge_check_reports_a_broken_template_in_one_line(tmp_path: Path) -> None:
    sip = tmp_path / "sip"
    sip.mkdir()
    shutil.copy(REPO / "sip" / "trunks.yaml", sip / "trunks.yaml")
    template = (REPO / "sip" / "kamailio.cfg.tmpl").read_text()
    (sip / "kamailio.cfg.tmpl").write_text(
        template.replace("route(SANITY);", "route(SANITY)\n\tnot_a_function(1);", 1)
    )
    config = write_node_config(tmp_path)
    config.write_text(
        config.read_text().replace(f"{REPO}/sip/trunks.yaml", str(sip / "trunks.yaml"))
    )
    done = run_cli("--config", str(config), "edge", "check")
    assert done.returncode == 2
    errors = [ln for ln in done.stderr.splitlines() if "warning" not in ln]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("flexvoice: error: ") and "kamailio.cfg" in errors[0]
    assert "line" in errors[0], errors[0]


async def test_edge_status_shows_workers_and_counters(tmp_path: Path) -> None:
    cfg, workers, state = edge_config(workers=2)
    config = tmp_path / "flexvoice.yaml"
    config.write_text(
        f"sip:\n  edge: {{port: {cfg.sip.edge.port}, ctl_socket: {cfg.sip.edge.ctl_socket}}}\n"
        f"  workers: {{count: 2, base_port: {workers[0].port}}}\n"
        f"  trunks: {REPO}/sip/trunks.yaml\n"
    )
    async with running_edge(cfg, workers, state) as edge:
        edge.set_worker_state(1, False)
        await edge.settled()
        done = await asyncio.to_thread(run_cli, "--config", str(config), "edge", "status")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("edge: up ")
    assert any(ln.startswith("w1") and "disabled" in ln and "0/4" in ln for ln in lines), lines
    assert any(ln.startswith("requests received") for ln in lines), lines
    gone = await asyncio.to_thread(run_cli, "--config", str(config), "edge", "status")
    assert gone.returncode == 2 and "no SIP edge is running" in gone.stderr


async def test_component_restarts_a_dead_kamailio_and_stops_it(tmp_path: Path) -> None:
    cfg, _workers, state = edge_config(workers=1)
    cfg = cfg.model_copy(
        update={"sip": cfg.sip.model_copy(update={"trunks": str(REPO / "sip" / "trunks.yaml")})}
    )
    app = build_app(cfg, [trunks_component, edge_component], ServeOptions(edge=True))
    assert app[STATUS].edge_enabled
    runner = web.AppRunner(app)
    await runner.setup()
    edge = app[EDGE]
    first = edge.pid
    try:
        assert app[STATUS].edge_up and first is not None
        os.kill(first, signal.SIGKILL)  # the main process only: its children linger
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if edge.pid != first and app[STATUS].edge_up:
                break
            await asyncio.sleep(0.1)
        assert edge.pid != first and app[STATUS].edge_up and edge.restarts == 1
        assert not group_alive(first), "children of the dead Kamailio were left running"
    finally:
        await runner.cleanup()
        shutil.rmtree(state, ignore_errors=True)
    assert not app[STATUS].edge_up
    assert edge.pid is not None and not group_alive(edge.pid)


async def test_component_does_nothing_without_the_edge() -> None:
    cfg, _workers, state = edge_config(workers=1)
    app = build_app(cfg, [edge_component], ServeOptions(edge=False))  # needs no trunks
    assert not app[STATUS].edge_enabled
    runner = web.AppRunner(app)
    await runner.setup()
    assert EDGE not in app and not app[STATUS].edge_up
    await runner.cleanup()
    shutil.rmtree(state, ignore_errors=True)

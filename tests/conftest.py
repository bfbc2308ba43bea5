"""Shared test helpers: run the CLI as a real subprocess, find free ports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from flexvoice.config import load_config
from flexvoice.storage import postgres, sqlite
from flexvoice.storage.engine import Connection, is_postgres
from flexvoice.storage.open import local_path, open_shared
from flexvoice.system import free_port, ports_free
from tests.pgkit import LANE, PgServer, lane_database, nodes_on_postgres, shared_server

REPO = Path(__file__).resolve().parent.parent

# A running node and its API (the `trunk_node` fixture), for the tests that start one, and a
# pool of real pjsua2 workers (the `make_pool` fixture).
pytest_plugins = ["tests.poolkit", "tests.nodekit"]  # poolkit first: nodekit imports it


def cli_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEXVOICE_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(overrides)
    return env


def run_cli(
    *args: str, cwd: Path = REPO, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flexvoice", *args],
        cwd=cwd,
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def tcp_port() -> int:
    return free_port()


@pytest.fixture
def repo() -> Path:
    return REPO


def free_port_range(count: int) -> int:
    """A base port with `count` consecutive ports free for UDP and TCP (for worker pools).
    Drawn from 61000 up, apart from every RTP range: a node's default rtp_base (20000), the
    tests' random bases (30000-50000), the OS's own ports (32768-60999) and sip_load's bench
    (6000-19999); a SIP port drawn among them was taken by a worker's RTP a moment later
    (edge port 20002 in a node whose workers use 20000-20031; worker ports 41501-41502 in a
    pool whose RTP was 41500-41531)."""
    for _ in range(200):
        base = random.randrange(61000, 65500 - count)
        if ports_free(base, count):
            return base
    raise RuntimeError("no free port range")


def write_node_config(
    tmp_path: Path, extra: str = "", workers: int = 2, database: str | None = None
) -> Path:
    """A flexvoice.yaml on free ports with state under tmp_path; repo data folders by path.
    `database`: a postgresql:// URL for the shared stores (in the PostgreSQL lane, a fresh
    one by default); the node's own SQLite file stays under tmp_path."""
    database = database or lane_database(tmp_path)
    storage = f"database: {tmp_path}/flexvoice.db"
    if database is not None:
        storage = f"database: '{database}', local: {tmp_path}/flexvoice.db"
    http = free_port()
    edge = free_port_range(1)
    base = free_port_range(workers + 1)
    text = f"""
http: {{host: 127.0.0.1, port: {http}}}
sip:
  edge: {{port: {edge}, ctl_socket: {tmp_path}/kamailio-ctl.sock}}
  workers: {{count: {workers}, base_port: {base}, drain_grace: 2s}}
  trunks: {REPO}/sip/trunks.yaml
  numbers: {REPO}/sip/numbers.yaml
storage: {{{storage}, recordings: {tmp_path}/recordings}}
paths: {{flows: {REPO}/flows, prompts: {REPO}/ivr_prompts, tariffs: {REPO}/metering/tariffs}}
"""
    path = tmp_path / "flexvoice.yaml"
    path.write_text(text + extra)
    return path


def node_store(config: Path) -> Connection:
    """A connection of its own to the shared store of the node `config` configures: its SQLite
    file, or its PostgreSQL database (the PostgreSQL lane). Tests read and change the node's
    calls, keys, accounts and usage through it, whatever the engine."""
    return open_shared(load_config(config, environ={}))


def node_store_text(config: Path) -> str:
    """Every row of every table in the node's shared store, as text (to show that something,
    a verification code, is stored nowhere), whatever the engine."""
    conn = node_store(config)
    try:
        if is_postgres(conn):
            listed = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            row_text = 'SELECT t::text FROM "{}" t'
        else:
            listed = "SELECT name FROM sqlite_master WHERE type = 'table'"
            row_text = 'SELECT * FROM "{}"'
        tables = [str(row[0]) for row in conn.execute(listed)]
        return "\n".join(
            repr(tuple(row)) for name in tables for row in conn.execute(row_text.format(name))
        )
    finally:
        conn.close()


def node_db(config: Path) -> str:
    """The same store as the CLI's --db takes it: the SQLite file, or the PostgreSQL URL."""
    cfg = load_config(config, environ={})
    return cfg.storage.shared_url or str(local_path(cfg))


@pytest.fixture
async def crm() -> AsyncIterator[tuple[str, list[Any], dict[str, Any]]]:
    """A local webhook server; set `answer["status"]`/`answer["body"]` per test."""
    seen: list[Any] = []
    answer: dict[str, Any] = {"status": 200, "body": {}}

    async def hook(request: web.Request) -> web.Response:
        seen.append(await request.json())
        if answer.get("delay"):
            await asyncio.sleep(answer["delay"])
        return web.Response(status=answer["status"], text=json.dumps(answer["body"]))

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/hook", seen, answer
    await runner.cleanup()


def crm_flow(url: str) -> str:
    text = (Path(__file__).parent.parent / "flows" / "bilingual.yaml").read_text()
    return text.replace("https://crm.example.be/flexvoice/lookup", url)


# ---- the two lanes ------------------------------------------------------------------------
# `./run test --fast` runs the unit lane: every test not marked sip, edge, process or slow. A unit
# test starts no process (no CLI subprocess, sipp, Kamailio, Redis, sox): the guard below
# fails one that does, so the lane stays fast and its marker honest.
SLOW_MARKERS = ("sip", "edge", "process", "slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if not any(item.get_closest_marker(name) for name in SLOW_MARKERS):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(autouse=True)
def _unit_tests_start_no_process(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if request.node.get_closest_marker("unit") is None:
        return

    def refuse(*args: Any, **kwargs: Any) -> None:
        what = repr(args[1] if len(args) > 1 else kwargs)[:120]
        raise AssertionError(
            f"{request.node.nodeid} starts a process ({what}); "
            "mark it @pytest.mark.process (full lane) or keep it in-process"
        )

    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Each phase's report on the test item (item.rep_call ...): fixtures that keep evidence
    of a failure (the designer's browser screenshots) look at it in their teardown."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def pg_server() -> PgServer:
    """One real PostgreSQL server per test process (tests marked `process` use it), the one
    the PostgreSQL lane's nodes use too."""
    return shared_server()


@pytest.fixture(scope="session", autouse=True)
def _postgres_lane() -> None:
    """In the PostgreSQL lane the server starts before any test (a unit test may not start
    processes, but its node config gets a database on it)."""
    if LANE:
        shared_server()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh database on the test session's PostgreSQL server."""
    return pg_server.new_database()


@pytest.fixture(
    params=["postgresql"]
    if LANE
    else ["sqlite", pytest.param("postgresql", marks=pytest.mark.process)]
)
def node_engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """The node's shared store on each engine, for the few node-level tests the normal lane
    runs on both (use it with @pytest.mark.usefixtures("node_engine"), so it comes before the
    node): SQLite, then a fresh PostgreSQL database as `./run test --pg` gives every node (that
    lane runs only the PostgreSQL case)."""
    if request.param == "sqlite" or LANE:
        yield request.param
        return
    request.getfixturevalue("pg_server")
    with nodes_on_postgres():
        yield request.param


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.process)])
def store_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Connection]:
    """The store on each engine: a SQLite file (unit lane), and a fresh database on the test
    session's PostgreSQL server (full lane: a server process)."""
    if request.param == "sqlite":
        conn: Connection = sqlite.connect(tmp_path / "store.db")
    else:
        conn = postgres.connect(request.getfixturevalue("pg_server").new_database())
    try:
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def running_redis(folder: Path) -> Iterator[str]:
    """A real redis-server on a free loopback port, without persistence; its URL."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is missing: './run' installs it (Debian package redis-server)"
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(250):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    with running_redis(tmp_path) as url:
        yield url

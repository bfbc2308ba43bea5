"""A running node as a subprocess, for the tests that call it over HTTP and SIP (a pytest plugin
loaded by conftest.py): start it, wait for its HTTP port and workers, stop it, call its API.

`trunk_node` starts a node whose default trunk points at a sipp peer on loopback (the carrier,
or the callee behind it); tests give their flows and numbers and get a `TrunkNode`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from flexvoice.storage.engine import Connection
from tests.conftest import REPO, cli_env, node_db, node_store, run_cli, write_node_config
from tests.poolkit import tone

# What the trunk presents as caller id unless a test says otherwise: the shop's first number.
SHOP_LINE = "+3225551001"

NOTIFY_FLOW = """\
flow: notify
description: Tells the callee their order is ready, then hangs up
start: tell
steps:
  tell:
    play: {prompt: thanks_bye, then: bye}
  bye:
    hangup: {}
"""


class NodeProcess(subprocess.Popen[str]):
    """`flexvoice serve` writing its stdout and stderr to files beside its config: a pipe
    nobody reads fills after about 64 KB and then blocks the node's logging (and the node).
    `communicate()` waits and returns what the files hold, as with pipes."""

    def __init__(self, cmd: list[str], out: Path, err: Path, **kwargs: Any) -> None:
        self.out_file, self.err_file = out, err
        with open(out, "w") as stdout, open(err, "w") as stderr:
            super().__init__(cmd, stdout=stdout, stderr=stderr, text=True, **kwargs)

    def communicate(  # type: ignore[override]
        self, input: str | None = None, timeout: float | None = None
    ) -> tuple[str, str]:
        self.wait(timeout=timeout)
        return self.output()

    def output(self) -> tuple[str, str]:
        """What the node wrote so far (stdout, stderr)."""
        read = lambda p: p.read_text(errors="replace") if p.exists() else ""  # noqa: E731
        return read(self.out_file), read(self.err_file)


def start_node(config: Path, *args: str) -> NodeProcess:
    n = len(list(config.parent.glob("node-*.stderr")))
    return NodeProcess(
        [sys.executable, "-m", "flexvoice", "--config", str(config), "serve", *args],
        config.parent / f"node-{n}.stdout",
        config.parent / f"node-{n}.stderr",
        cwd=REPO,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def http_port(config: Path) -> int:
    return int(yaml.safe_load(config.read_text())["http"]["port"])


def wait_http(
    port: int, path: str, proc: subprocess.Popen[str], timeout: float = 30
) -> tuple[int, bytes]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"node exited early: {proc.communicate()[1]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"no answer on {path} within {timeout}s")


def session_processes(sid: int) -> list[str]:
    out = subprocess.run(["ps", "-eo", "sid=,pid=,comm="], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if line.split()[0] == str(sid)]


def wait_workers(port: int, proc: subprocess.Popen[str], up: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _status, body = wait_http(port, "/healthz", proc)
        if json.loads(body)["workers"]["up"] == up:
            return
        time.sleep(0.2)
    raise AssertionError(f"workers up never reached {up}")


def stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM, a clean exit and no process left in the node's session; the node's log."""
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err[-3000:]
    assert session_processes(proc.pid) == []
    return err


def api(port: int, key: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for(check: Callable[[], Any], timeout: float = 30) -> Any:
    """The first truthy answer of `check`, polled every 0.2 s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError("timed out")


def trunk_node_config(
    tmp: Path,
    trunk_port: int,
    flows: dict[str, str] | None = None,
    numbers: dict[str, dict[str, str]] | None = None,
    caller_id: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    workers: int = 2,
) -> Path:
    """flexvoice.yaml for a node whose default trunk `carrier` is 127.0.0.1:`trunk_port`.
    `flows` maps a flow name to its YAML; `numbers` a number to `{account, flow}` (every
    account on the flexio-payu tariff); `settings` are top-level config sections to add.
    By default the shop's line runs the notify flow."""
    if flows is None:
        flows = {"notify": NOTIFY_FLOW}
    if numbers is None:
        numbers = {SHOP_LINE: {"account": "shop", "flow": "notify"}}
    folder = tmp / "flows"
    folder.mkdir()
    for name, text in flows.items():
        (folder / f"{name}.yaml").write_text(text)
    trunks = {
        "trunks": {
            "carrier": {
                "proxy": f"127.0.0.1:{trunk_port}",
                "source_addresses": ["127.0.0.1"],
                "caller_id": caller_id or {"default": SHOP_LINE},
            }
        },
        "default_outbound": "carrier",
    }
    (tmp / "trunks.yaml").write_text(yaml.safe_dump(trunks))
    accounts = {n["account"]: {"tariff": "flexio-payu"} for n in numbers.values()}
    (tmp / "numbers.yaml").write_text(yaml.safe_dump({"accounts": accounts, "numbers": numbers}))
    config = write_node_config(tmp, workers=workers)
    doc = yaml.safe_load(config.read_text())
    doc["sip"]["trunks"] = str(tmp / "trunks.yaml")
    doc["sip"]["numbers"] = str(tmp / "numbers.yaml")
    doc["paths"]["flows"] = str(folder)
    doc["paths"]["prompts"] = str(REPO / "ivr_prompts")
    doc.update(settings or {})
    config.write_text(yaml.safe_dump(doc))
    return config


@dataclass
class TrunkNode:
    """A running node (edge, workers, flows, API, metering) with a sipp peer behind its trunk."""

    tmp: Path
    config: Path
    trunk_port: int
    workers: int
    proc: subprocess.Popen[str] | None = None
    log: str = ""  # the node's stderr, once stopped
    keys: dict[tuple[str, str], str] = field(default_factory=dict)
    port: int = 0  # HTTP, read from the config
    sip_port: int = 0  # the edge's

    def __post_init__(self) -> None:
        doc = yaml.safe_load(self.config.read_text())
        self.port, self.sip_port = int(doc["http"]["port"]), int(doc["sip"]["edge"]["port"])

    @property
    def edge(self) -> str:
        return f"127.0.0.1:{self.sip_port}"

    @property
    def db(self) -> str:
        """The shared store, as the CLI's --db takes it: the SQLite file, or the PostgreSQL
        URL of a node configured with one."""
        return node_db(self.config)

    def store(self) -> Connection:
        """A connection of its own to the node's shared store, whatever the engine."""
        return node_store(self.config)

    @property
    def local_db(self) -> Path:
        """The node's own SQLite file (the same as `db` without PostgreSQL)."""
        return self.tmp / "flexvoice.db"

    @property
    def key(self) -> str:
        """The shop's developer key."""
        return self.new_key("shop", "developer")

    def start(self) -> TrunkNode:
        """Start (or start again) and wait until HTTP answers and every worker is up."""
        self.proc = start_node(self.config)
        try:
            wait_http(self.port, "/healthz", self.proc, timeout=60)
            wait_workers(self.port, self.proc, self.workers)
        except BaseException:
            if self.proc.poll() is None:  # leave no node behind a failed start
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.communicate(timeout=30)
            raise
        return self

    def stop(self) -> str:
        """Stop it cleanly (asserted); its log. Stopping a stopped node does nothing."""
        if self.proc is not None and self.proc.returncode is None:
            self.log = stop(self.proc)
        return self.log

    def new_key(self, account: str, role: str) -> str:
        """An API key made by the CLI (one per account and role, made on first use)."""
        if (account, role) not in self.keys:
            made = run_cli("keys", "create", "--account", account, "--role", role, "--db", self.db)
            assert made.returncode == 0, made.stderr
            self.keys[account, role] = made.stdout.split()[0]
        return self.keys[account, role]

    def api(self, method: str, path: str, body: Any = None, key: str = "") -> tuple[int, Any]:
        return api(self.port, key or self.key, method, path, body)

    def call(self, body: dict[str, Any]) -> tuple[int, Any]:
        return self.api("POST", "/v1/calls", body)

    def get(self, path: str) -> Any:
        status, doc = self.api("GET", path)
        assert status == 200, doc
        return doc

    def wait_call(self, call_id: str, until: Any, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        call = self.get(f"/v1/calls/{call_id}")
        while time.monotonic() < deadline and not until(call):
            time.sleep(0.2)
            call = self.get(f"/v1/calls/{call_id}")
        return call

    def active_calls(self) -> float:
        assert self.proc is not None
        _status, body = wait_http(self.port, "/metrics", self.proc)
        found = re.search(rb"^flexvoice_active_calls (\S+)$", body, re.M)
        assert found is not None, body[:500]
        return float(found.group(1))

    def export(self, month: str) -> list[dict[str, Any]]:
        """Finance's detailed usage export for `month`, through the CLI."""
        out = run_cli(
            "usage", "export", "--month", month, "--detail", "--format", "json",
            "--db", self.db,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        rows: list[dict[str, Any]] = json.loads(out.stdout)
        return rows


def launch_trunk_node(tmp: Path, trunk_port: int, **config: Any) -> TrunkNode:
    """Write the config (trunk_node_config's arguments) and start the node."""
    workers = int(config.get("workers", 2))
    path = trunk_node_config(tmp, trunk_port, **config)
    return TrunkNode(tmp, path, trunk_port, workers).start()


StartTrunkNode = Callable[..., TrunkNode]


@pytest.fixture
def trunk_node(tmp_path: Path) -> Iterator[StartTrunkNode]:
    """`trunk_node(trunk_port, flows=..., numbers=...)` starts a node under tmp_path; one the
    test did not stop is stopped (and its clean exit asserted) at teardown."""
    started: list[TrunkNode] = []

    def start(trunk_port: int, **config: Any) -> TrunkNode:
        node = launch_trunk_node(tmp_path, trunk_port, **config)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


def edge_node(tmp_path: Path, workers: int) -> tuple[Path, int]:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    tone(prompts / "welcome.wav", 3.0)  # then the node hangs up
    numbers = tmp_path / "numbers.yaml"
    numbers.write_text(
        "accounts:\n  bakery: {tariff: flexio-payu}\nnumbers:\n"
        '  "+3225551003": {account: bakery, prompt: welcome}\n'
    )
    config = write_node_config(tmp_path, workers=workers)
    doc = yaml.safe_load(config.read_text())
    doc["sip"]["numbers"] = str(numbers)
    doc["paths"]["prompts"] = str(prompts)
    doc["logging"] = {"level": "info"}
    config.write_text(yaml.safe_dump(doc))
    return config, int(doc["sip"]["edge"]["port"])


def worker_pids(node_pid: int, config: Path) -> dict[int, int]:
    """index -> pid of the node's media workers: whoever of the node's descendants (workers
    are forked from a template process) holds UDP port base_port + index."""
    workers = yaml.safe_load(config.read_text())["sip"]["workers"]
    base, count = int(workers["base_port"]), int(workers["count"])
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        pid, ppid = (int(x) for x in line.split())
        children.setdefault(ppid, []).append(pid)
    descendants, todo = set(), [node_pid]
    while todo:
        for child in children.get(todo.pop(), []):
            descendants.add(child)
            todo.append(child)
    found: dict[int, int] = {}
    listening = subprocess.run(["ss", "-ulpnH"], capture_output=True, text=True).stdout
    for line in listening.splitlines():
        fields = line.split()
        port = int(fields[3].rsplit(":", 1)[1])
        match = re.search(r"pid=(\d+)", line)
        if match and base <= port < base + count and int(match.group(1)) in descendants:
            found[port - base] = int(match.group(1))
    return found


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    assert match, name
    return float(match.group(1))


def edge_loads(config: Path) -> list[str]:
    """The `calls` column of `flexvoice edge status`, one entry per worker ('0/4')."""
    out = subprocess.run(
        [sys.executable, "-m", "flexvoice", "--config", str(config), "edge", "status"],
        cwd=REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    return [line.split()[-1] for line in out.stdout.splitlines() if line[:2] in ("w0", "w1")]

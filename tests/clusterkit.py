"""Several nodes as one service on this machine, for the cluster test and `./run bench cluster`:
a real redis-server, the shared edge (`flexvoice cluster edge`) and nodes (`flexvoice serve`)
on one PostgreSQL, each a subprocess on its own loopback ports, stopped by its PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from flexvoice.system import free_port
from tests.conftest import REPO, cli_env, free_port_range, run_cli
from tests.conftest import running_redis as running_redis  # the cluster's Redis, for its users
from tests.nodekit import NodeProcess, start_node, stop, wait_http, wait_workers, worker_pids
from tests.poolkit import tone

LONG_LINE = "+3225551003"  # the call stays up until someone hangs up (10 minutes at most)
QUEUE_LINE = "+3225551004"  # callers wait in the `support` queue for an agent who only rings
RINGING_AGENT = "+3225559003"  # tests/sipp/uas_agents_ear.xml rings this one until cancelled
SALES_LINE = "+3225551005"  # callers wait a moment, then queue for the agent who answers
EAR_AGENT = "+3225559004"  # answers with its media to the test's ear, hangs up after 8 s


HOLD_FLOW = """\
flow: hold
description: Keeps the caller on the line (a 10 s tone, 60 times) until someone hangs up
start: hold
steps:
  hold:
    play: {prompt: long, loop: 60}
"""


QUEUE_FLOW = f"""\
flow: support
description: Callers of every node wait in one line for the agent
start: line
steps:
  line:
    queue: {{name: support, targets: ["{RINGING_AGENT}"], ring_timeout: 120s, max_wait: 10m,
            music: long, announce_position: false, retry_interval: 1s}}
"""


SALES_FLOW = f"""\
flow: sales
description: A short greeting (the test sees which node took the call), then the queue
start: greet
steps:
  greet:
    play: {{prompt: short, then: line}}
  line:
    queue: {{name: sales, targets: ["{EAR_AGENT}"], ring_timeout: 20s, max_wait: 5m,
            music: long, announce_position: false, retry_interval: 1s}}
"""


def shared_files(folder: Path, trunk_port: int) -> dict[str, str]:
    """The numbers, flows, prompts and trunk every node of the test cluster serves: the long
    line holds a call ten minutes (a test's calls must outlive a loaded machine's slow
    steps); the queue line's agents are behind the trunk on `trunk_port`."""
    prompts = folder / "prompts"
    prompts.mkdir(exist_ok=True)
    tone(prompts / "long.wav", 10.0)
    tone(prompts / "short.wav", 2.0)
    flows = folder / "flows"
    flows.mkdir(exist_ok=True)
    (flows / "hold.yaml").write_text(HOLD_FLOW)
    (flows / "support.yaml").write_text(QUEUE_FLOW)
    (flows / "sales.yaml").write_text(SALES_FLOW)
    numbers = folder / "numbers.yaml"
    numbers.write_text(
        f'accounts:\n  bakery: {{tariff: flexio-payu}}\nnumbers:\n  "{LONG_LINE}": '
        f'{{account: bakery, flow: hold}}\n  "{QUEUE_LINE}": {{account: bakery, flow: support}}\n'
        f'  "{SALES_LINE}": {{account: bakery, flow: sales}}\n'
    )
    trunks = folder / "trunks.yaml"
    trunks.write_text(
        yaml.safe_dump({
            "trunks": {"carrier": {"proxy": f"127.0.0.1:{trunk_port}",
                                   "source_addresses": ["127.0.0.1"],
                                   "caller_id": {"default": LONG_LINE}}},
            "default_outbound": "carrier",
        })
    )  # fmt: skip
    return {"numbers": str(numbers), "prompts": str(prompts), "flows": str(flows),
            "trunks": str(trunks)}  # fmt: skip


@dataclass
class ClusterNode:
    name: str
    folder: Path
    config: Path
    port: int
    workers: int
    proc: NodeProcess | None = None
    log: str = ""

    @property
    def db(self) -> Path:
        return self.folder / "flexvoice.db"

    def worker_uris(self) -> list[str]:
        workers = yaml.safe_load(self.config.read_text())["sip"]["workers"]
        host, base = workers.get("host", "127.0.0.1"), int(workers["base_port"])
        return [f"sip:{host}:{base + n}" for n in range(self.workers)]

    def start(self) -> ClusterNode:
        self.proc = start_node(self.config)
        wait_http(self.port, "/healthz", self.proc, timeout=90)
        wait_workers(self.port, self.proc, self.workers, timeout=60)
        return self

    def kill(self) -> None:
        """kill -9 of the node and its workers at once (as a power cut would)."""
        assert self.proc is not None
        workers = worker_pids(self.proc.pid, self.config)
        os.killpg(self.proc.pid, signal.SIGSTOP)  # so it cannot see its workers die
        for pid in workers.values():
            os.kill(pid, signal.SIGKILL)
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> str:
        if self.proc is not None and self.proc.returncode is None:
            self.log = stop(self.proc)
        elif self.proc is not None:
            self.log = self.proc.output()[1]
        return self.log


@dataclass
class Cluster:
    folder: Path
    redis: str
    database: str
    edge_port: int
    edge_config: Path
    files: dict[str, str]
    trunk_port: int
    edge: NodeProcess | None = None
    nodes: dict[str, ClusterNode] = field(default_factory=dict)
    key: str = ""

    @property
    def edge_address(self) -> str:
        return f"127.0.0.1:{self.edge_port}"

    def start_edge(self) -> None:
        self.edge = NodeProcess(
            [sys.executable, "-m", "flexvoice", "--config", str(self.edge_config), "cluster",
             "edge"],
            self.folder / "edge.stdout",
            self.folder / "edge.stderr",
            cwd=REPO, env=cli_env(), stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while "shared_edge.started" not in self.edge.output()[1]:
            assert self.edge.poll() is None, self.edge.output()[1][-3000:]
            assert time.monotonic() < deadline, "the shared edge did not start"
            time.sleep(0.1)

    def add_node(self, name: str, workers: int = 2, host: str = "127.0.0.1") -> ClusterNode:
        """`host`: the address its workers listen on (another loopback address stands for
        another machine: the edge reaches them there, and trusts them as its workers)."""
        folder = self.folder / name
        folder.mkdir()
        http = free_port()
        base = free_port_range(workers + 1)
        doc = {
            "http": {"host": "127.0.0.1", "port": http},
            "sip": {
                "edge": {"port": self.edge_port, "ctl_socket": str(folder / "ctl.sock")},
                "workers": {"count": workers, "host": host, "base_port": base,
                            "drain_grace": "2s",
                            "rtp_base": free_port_range(16 * workers)},
                "trunks": self.files["trunks"],
                "numbers": self.files["numbers"],
            },
            "storage": {"database": self.database, "local": str(folder / "flexvoice.db"),
                        "recordings": str(folder / "recordings")},
            "redis": {"enabled": True, "url": self.redis},
            "cluster": {"enabled": True, "node": name, "edge": "shared"},
            "paths": {"flows": self.files["flows"], "prompts": self.files["prompts"],
                      "tariffs": str(REPO / "metering" / "tariffs")},
            "logging": {"level": "info"},
        }  # fmt: skip
        config = folder / "flexvoice.yaml"
        config.write_text(yaml.safe_dump(doc))
        node = ClusterNode(name, folder, config, http, workers)
        self.nodes[name] = node
        return node

    def new_key(self) -> str:
        made = run_cli(
            "keys", "create", "--account", "bakery", "--role", "developer", "--db", self.database
        )
        assert made.returncode == 0, made.stderr
        self.key = made.stdout.split()[0]
        return self.key

    def dispatcher(self) -> list[str]:
        """The worker URIs the edge sends new calls to now (listed and active)."""
        out = subprocess.run(
            ["kamcmd", "-s", f"unix:{self.folder / 'edge-ctl.sock'}", "dispatcher.list"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        active, uri = [], ""
        for line in out.stdout.splitlines():
            key, _, value = line.strip().partition(":")
            if key == "URI":
                uri = value.strip()
            elif key == "FLAGS" and uri:
                if "A" in value and "D" not in value and "I" not in value:
                    active.append(uri)
                uri = ""
        return active

    def stop(self) -> None:
        for node in self.nodes.values():
            with contextlib.suppress(Exception):
                node.stop()
        if self.edge is not None and self.edge.returncode is None:
            self.edge.send_signal(signal.SIGTERM)
            try:
                self.edge.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.edge.pid, signal.SIGKILL)
                self.edge.wait(timeout=10)


def make_cluster(folder: Path, redis: str, database: str) -> Cluster:
    trunk_port = free_port_range(1)
    files = shared_files(folder, trunk_port)
    edge_port = free_port_range(1)
    edge_config = folder / "edge.yaml"
    edge_config.write_text(
        yaml.safe_dump(
            {
                "sip": {
                    "edge": {"port": edge_port, "ctl_socket": str(folder / "edge-ctl.sock")},
                    "trunks": files["trunks"],
                },
                "redis": {"enabled": True, "url": redis},
                "logging": {"level": "info"},
            }
        )
    )
    return Cluster(folder, redis, database, edge_port, edge_config, files, trunk_port)

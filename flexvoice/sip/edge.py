"""The SIP edge: Kamailio in front of the media workers, configured and run by the node.

`Edge` writes var/edge/kamailio.cfg from sip/kamailio.cfg.tmpl (plus the dispatcher list of
the workers), runs Kamailio in the foreground in its own process group (so stopping it can
never leave a child behind), and talks to it over the ctl socket with `kamcmd`:

    edge = Edge(cfg, worker_addresses(cfg), load_trunks(path))
    await edge.start()                  # returns once Kamailio answers SIP
    edge.set_worker_state(1, up=False)  # the pool saw worker 1 die: no new calls to it
    await edge.stop()

Worker states: the pool is the authority. `set_worker_state(n, False)` disables the worker in
the dispatcher (pings do not bring a disabled worker back), `set_worker_state(n, True)`
makes it active again. OPTIONS pinging is only the safety net for a worker that hangs without
the pool noticing; a worker taken out by pings comes back by pings. The wanted states survive a
restart of Kamailio.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flexvoice.config import Config
from flexvoice.errors import UserError
from flexvoice.logs import get_logger
from flexvoice.sip.addresses import WorkerAddress
from flexvoice.sip.trunks import Trunks
from flexvoice.system import port_in_use_error, require_binary

log = get_logger(__name__)

REPO_TEMPLATE = Path(__file__).resolve().parent.parent.parent / "sip" / "kamailio.cfg.tmpl"
DISPATCHER_SET = 1
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
RPC_TIMEOUT = 5.0
# AF_UNIX paths are limited to 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 100

# Dispatcher destination flags (dispatcher module, ds.h).
DS_INACTIVE = 1
DS_DISABLED = 4
DS_PROBING = 8

_PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")


@dataclass(frozen=True)
class EdgeTarget:
    """One worker as the dispatcher sees it."""

    index: int
    uri: str
    state: str  # "active", "inactive" (pings failed) or "disabled" (the pool took it out)
    probing: bool
    flags: str  # Kamailio's own letters, e.g. "AP"
    load: int  # calls the dispatcher counts on it now (algorithm 10)
    maxload: int


# What the media workers can read, measured on the pjsua2 2.15.1 wheel: a message over 4,000
# bytes is dropped without an answer (PJSIP_MAX_PKT_LEN), a URI over 256 characters prints as
# "-error" (PJSIP_MAX_URL_SIZE). The edge adds about 250 bytes (its Via and two
# Record-Routes) before a request reaches a worker, so it refuses larger ones itself.
MAX_REQUEST_URI = 256
MAX_SIP_BODY = 2500
MAX_SIP_MESSAGE = 3600


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child before exec (Linux): SIGTERM when the process that started it dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def template_path(cfg: Config) -> Path:
    """sip/kamailio.cfg.tmpl next to the trunks file, else the one shipped in the repository."""
    beside = cfg.path(cfg.sip.trunks).parent / "kamailio.cfg.tmpl"
    return beside if beside.exists() else REPO_TEMPLATE


def _sip_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def render_config(
    cfg: Config,
    workers: list[WorkerAddress],
    trunks: Trunks,
    *,
    runtime_dir: Path,
    dispatcher_list: Path,
    ctl_socket: Path,
    template: Path | None = None,
) -> str:
    """The Kamailio configuration text for this node (pure: writes nothing)."""
    edge = cfg.sip.edge
    template = template or template_path(cfg)
    try:
        text = template.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read the edge template {template}: {exc.strerror}") from None

    host, port = edge.host, edge.port
    wildcard = host in ("0.0.0.0", "::")
    loopback_only = host == "127.0.0.1"
    advertise = f" advertise {edge.advertise}" if edge.advertise else ""
    listen = [
        f"listen=udp:{_sip_host(host)}:{port}{advertise}",
        f"listen=tcp:{_sip_host(host)}:{port}{advertise}",
    ]
    worker_socket = "# one listen address: replies to workers leave from it"
    if not (wildcard or loopback_only):
        # Workers reach the edge on loopback (their outbound proxy is 127.0.0.1:port).
        listen += [f"listen=udp:127.0.0.1:{port}", f"listen=tcp:127.0.0.1:{port}"]
        worker_socket = f'$fs = "udp:127.0.0.1:{port}";  # the loopback side, towards workers'

    aliases = [a for a in edge.aliases]
    if edge.advertise:
        aliases.append(edge.advertise)
    alias_lines = [f'alias="{a}"' for a in aliases] or ["# (no aliases configured)"]

    trunk_sources: list[str] = []
    for trunk in trunks:
        for net in trunk.source_networks:
            trunk_sources.append(
                f"\tif (src_ip == {net.with_prefixlen}) {{  # trunk {trunk.name}\n"
                f'\t\t$var(peer) = "trunk";\n\t\treturn;\n\t}}'
            )
    trunk_targets: list[str] = []
    for trunk in trunks:
        carrier_socket = ""
        dest = f"sip:{_sip_host(trunk.address)}:{trunk.port};transport={trunk.transport}"
        if not (wildcard or loopback_only):
            carrier_socket = f'\t\t$fs = "{trunk.transport}:{_sip_host(host)}:{port}";\n'
        trunk_targets.append(
            f'\tif ($rd == "{trunk.address}" && $rp == {trunk.port}) {{  # trunk {trunk.name}\n'
            f"\t\trecord_route();\n"
            f'\t\t$du = "{dest}";\n'
            f"{carrier_socket}"
            f"\t\tt_set_fr(120000, 5000);\n"
            f"\t\troute(RELAY);\n\t}}"
        )

    values = {
        "CHILDREN": str(edge.children),
        "ALIASES": "\n".join(alias_lines),
        "RUNTIME_DIR": str(runtime_dir),
        "LISTEN": "\n".join(listen),
        "CTL_SOCKET": str(ctl_socket),
        "PIKE_DENSITY": str(edge.flood_limit * 2),  # per 2 s sampling window
        "DISPATCHER_LIST": str(dispatcher_list),
        "PING_INTERVAL": str(edge.ping_interval),
        "TRUNK_SOURCES": "\n".join(trunk_sources) or "\t# (no trunks configured)",
        "WORKER_SOCKET": worker_socket,
        "WORKER_TIMEOUT_MS": str(max(100, round(edge.worker_timeout * 1000))),
        "TRUNK_TARGETS": "\n".join(trunk_targets) or "\t# (no trunks configured)",
        "MAX_REQUEST_URI": str(MAX_REQUEST_URI),
        "MAX_BODY": str(MAX_SIP_BODY),
        "MAX_MESSAGE": str(MAX_SIP_MESSAGE),
    }
    unknown = sorted({m for m in _PLACEHOLDER.findall(text) if m not in values})
    if unknown:
        raise UserError(
            f"{template}: unknown placeholder(s) {', '.join('{{' + u + '}}' for u in unknown)}; "
            f"known: {', '.join(sorted(values))}"
        )
    body = _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)
    defines = ["#!define WITH_ACL"] if edge.acl else ["# ACL off (sip.edge.acl: false)"]
    first, _, rest = body.partition("\n")
    if first.strip() != "#!KAMAILIO":
        raise UserError(f"{template}: the first line must be '#!KAMAILIO'")
    header = "# GENERATED FILE: edit sip/kamailio.cfg.tmpl or flexvoice.yaml instead."
    return "\n".join([first, header, *defines, rest])


def render_dispatcher_list(
    workers: list[WorkerAddress], max_calls: int, down: set[int] | None = None
) -> str:
    lines = ["# setid destination flags priority attrs (generated: one line per media worker)"]
    for w in workers:
        flags = DS_DISABLED if down and w.index in down else 0
        lines.append(f"{DISPATCHER_SET} {w.uri} {flags} 0 duid={w.duid};maxload={max_calls}")
    return "\n".join(lines) + "\n"


def parse_kamcmd(text: str) -> Any:
    """kamcmd's printed structures ({ KEY: value ... }) as dicts; repeated keys become lists."""
    # Every key collects a list while parsing; single values are unwrapped at the end.
    stack: list[dict[str, list[Any]]] = [{}]
    keys: list[str] = ["ROOT"]
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.endswith("{"):
            key = line[:-1].strip().rstrip(":").strip() or "ITEM"
            stack.append({})
            keys.append(key)
            continue
        if line == "}":
            if len(stack) > 1:
                done, key = stack.pop(), keys.pop()
                stack[-1].setdefault(key, []).append(_unwrap(done))
            continue
        key, sep, value = line.partition(":")
        if sep:
            stack[-1].setdefault(key.strip(), []).append(value.strip())
        else:
            stack[-1].setdefault("VALUE", []).append(line)
    while len(stack) > 1:
        done, key = stack.pop(), keys.pop()
        stack[-1].setdefault(key, []).append(_unwrap(done))
    root = _unwrap(stack[0])
    return root.get("ITEM", root) if isinstance(root, dict) else root


def _unwrap(d: dict[str, list[Any]]) -> dict[str, Any]:
    return {k: v[0] if len(v) == 1 else v for k, v in d.items()}


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def _int(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


class Edge:
    """One Kamailio process: configured from the node's config, run and stopped by us."""

    def __init__(
        self,
        cfg: Config,
        workers: list[WorkerAddress],
        trunks: Trunks,
        *,
        state_dir: Path | None = None,
    ):
        self.cfg = cfg
        self.workers = list(workers)
        self.trunks = trunks
        self.dir = state_dir or cfg.path("var/edge")
        self.ctl_socket = cfg.path(cfg.sip.edge.ctl_socket)
        self.config_file = self.dir / "kamailio.cfg"
        self.dispatcher_list = self.dir / "dispatcher.list"
        self.log_file = self.dir / "kamailio.log"
        self._proc: asyncio.subprocess.Process | None = None
        self._wanted: dict[int, bool] = {}
        self._pushes: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.started_at = 0.0
        self.restarts = 0

    # -- configuration ----------------------------------------------------------------------
    @property
    def kamailio(self) -> str:
        e = self.cfg.sip.edge
        return require_binary(e.kamailio, "kamailio", "the SIP edge", "sip.edge.kamailio")

    @property
    def kamcmd(self) -> str:
        beside = Path(self.kamailio).with_name("kamcmd")
        if beside.exists():
            return str(beside)
        return require_binary("kamcmd", "kamailio", "talking to the SIP edge")

    def write_config(self) -> Path:
        """Write kamailio.cfg and dispatcher.list under the state directory; return the cfg."""
        sock = str(self.ctl_socket)
        if len(sock.encode()) > MAX_SOCKET_PATH:
            raise UserError(
                f"sip.edge.ctl_socket: '{sock}' is {len(sock.encode())} bytes; a Unix socket "
                f"path must stay under {MAX_SOCKET_PATH}: choose a shorter path"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ctl_socket.parent.mkdir(parents=True, exist_ok=True)
        down = {i for i, up in self._wanted.items() if not up}
        self.dispatcher_list.write_text(
            render_dispatcher_list(self.workers, self.cfg.sip.workers.max_calls, down)
        )
        text = render_config(
            self.cfg,
            self.workers,
            self.trunks,
            runtime_dir=self.dir,
            dispatcher_list=self.dispatcher_list,
            ctl_socket=self.ctl_socket,
        )
        self.config_file.write_text(text)
        return self.config_file

    def check(self) -> None:
        """Write the config and have Kamailio parse it (`kamailio -c`); UserError if it fails."""
        import subprocess

        path = self.write_config()
        proc = subprocess.run(
            [self.kamailio, "-c", "-f", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise UserError(f"{path}: {complaint(proc.stdout + proc.stderr)}")

    # -- process ----------------------------------------------------------------------------
    @property
    def up(self) -> bool:
        return self._proc is not None and self._proc.returncode is None and self.started_at > 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _check_ports(self) -> None:
        e = self.cfg.sip.edge
        family = socket.AF_INET6 if ":" in e.host else socket.AF_INET
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(family, kind) as s:
                if kind == socket.SOCK_STREAM:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((e.host, e.port))
                except OSError as exc:
                    raise port_in_use_error(e.host, e.port, "sip.edge.port", exc) from None

    def _clear_stale_socket(self) -> None:
        if not self.ctl_socket.exists():
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(str(self.ctl_socket))
            except OSError:
                self.ctl_socket.unlink(missing_ok=True)  # left by a Kamailio that was killed
                return
        raise UserError(
            f"another SIP edge is running with sip.edge.ctl_socket {self.ctl_socket}; stop it "
            "or give this node its own ctl_socket"
        )

    async def start(self) -> None:
        """Start Kamailio and wait until it answers SIP; UserError when it cannot start."""
        if self.up:
            return
        if self._proc is not None:
            await self._kill()  # a Kamailio that died may have left children holding the ports
        self._stopping = False
        await self._stop_stale()
        self._check_ports()
        self._clear_stale_socket()
        path = self.write_config()
        cmd = [self.kamailio, "-DD", "-E", "-f", str(path)]
        rotate_log(self.log_file)
        with open(self.log_file, "ab") as out:
            self._proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,  # its own process group: stop() kills all of it
                # Kamailio must never outlive the node (kill -9 of `serve`): the kernel sends
                # it SIGTERM when the node dies, and its main process stops its children.
                preexec_fn=die_with_parent,
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")
        log.info("edge.starting", pid=self._proc.pid, config=str(path), log=str(self.log_file))
        try:
            await self._wait_ready()
        except BaseException:
            await self._kill()
            raise
        self.started_at = time.monotonic()
        for index, up in self._wanted.items():
            await self._push_state(index, up)
        e = self.cfg.sip.edge
        log.info("edge.started", pid=self._proc.pid, sip=f"{e.host}:{e.port}", acl=e.acl)

    async def _wait_ready(self) -> None:
        assert self._proc is not None
        e = self.cfg.sip.edge
        target = "127.0.0.1" if e.host in ("0.0.0.0", "::") else e.host
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.returncode is not None:
                raise UserError(
                    f"the SIP edge (Kamailio) exited at start: {complaint(self._log_tail())} "
                    f"(log: {self.log_file})"
                )
            if await asyncio.to_thread(sip_ping, target, e.port, 0.3):
                return
            await asyncio.sleep(0.05)
        raise UserError(
            f"the SIP edge (Kamailio) did not answer SIP on {target}:{e.port} within "
            f"{START_TIMEOUT:.0f}s (log: {self.log_file})"
        )

    def _log_tail(self, size: int = 8192) -> str:
        try:
            with open(self.log_file, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - size))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    async def wait(self) -> int:
        """Until Kamailio exits; its exit status."""
        assert self._proc is not None
        return await self._proc.wait()

    async def stop(self) -> None:
        """SIGTERM to the whole process group, SIGKILL after STOP_TIMEOUT; no orphans."""
        self._stopping = True
        for task in list(self._pushes):
            task.cancel()
        if self._proc is None:
            return
        proc = self._proc
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                log.warning("edge.stop_timeout", pid=proc.pid)
        await self._kill()
        self.started_at = 0.0
        self.ctl_socket.unlink(missing_ok=True)
        self.pid_file.unlink(missing_ok=True)
        log.info("edge.stopped", pid=proc.pid, rc=proc.returncode)

    @property
    def pid_file(self) -> Path:
        return self.log_file.with_name("kamailio.pid")

    async def _stop_stale(self) -> None:
        """A Kamailio of this node left running by a node that was killed (before parent-death
        signals, or with a kernel that lost it) holds the SIP port: found by its pid file and
        stopped, its whole process group, so the new node can start."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            cmdline = ""
        if "kamailio" not in cmdline or str(self.config_file) not in cmdline:
            self.pid_file.unlink(missing_ok=True)  # gone, or the pid now belongs to another
            return
        log.warning("edge.stale_found", pid=pid, config=str(self.config_file))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            await asyncio.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)  # its children release the ports
        self.pid_file.unlink(missing_ok=True)
        self.ctl_socket.unlink(missing_ok=True)
        log.info("edge.stale_stopped", pid=pid)

    async def _kill(self) -> None:
        """SIGKILL whatever is left of the process group (children outlive a killed parent)."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        await self._proc.wait()
        self.started_at = 0.0

    @property
    def stopping(self) -> bool:
        return self._stopping

    # -- worker states ----------------------------------------------------------------------
    def set_worker_state(self, index: int, up: bool) -> None:
        """The pool saw worker `index` die (up=False) or come back (up=True).

        Returns at once (the pool calls it from event handlers); the change reaches Kamailio
        within milliseconds over the ctl socket. `await edge.settled()` waits for it.
        """
        if index not in {w.index for w in self.workers}:
            raise ValueError(f"no worker {index} behind this edge")
        self._wanted[index] = up
        if not self.up:
            return  # applied when Kamailio (re)starts
        task = asyncio.get_running_loop().create_task(self._push_state(index, up))
        self._pushes.add(task)
        task.add_done_callback(self._pushes.discard)

    async def settled(self) -> None:
        """Wait until every state change asked for so far has reached Kamailio."""
        if self._pushes:
            await asyncio.gather(*self._pushes, return_exceptions=True)

    async def _push_state(self, index: int, up: bool) -> None:
        worker = next(w for w in self.workers if w.index == index)
        state = "a" if up else "d"
        try:
            await self.rpc("dispatcher.set_state", state, str(DISPATCHER_SET), worker.uri)
        except UserError as exc:
            log.error("edge.set_state_failed", worker=index, up=up, error=str(exc))
            return
        log.info("edge.worker_state", worker=index, up=up)

    # -- ctl socket -------------------------------------------------------------------------
    async def rpc(self, *args: str) -> str:
        """Run one `kamcmd` command over the ctl socket; its output."""
        proc = await asyncio.create_subprocess_exec(
            self.kamcmd,
            "-s",
            f"unix:{self.ctl_socket}",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), RPC_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise UserError(
                f"the SIP edge did not answer '{args[0]}' within {RPC_TIMEOUT}s"
            ) from None
        if proc.returncode != 0:
            why = (err or out).decode("utf-8", "replace").strip().splitlines()
            raise UserError(
                f"the SIP edge refused '{' '.join(args)}': {why[-1] if why else 'no answer'} "
                f"(ctl socket {self.ctl_socket})"
            )
        return out.decode("utf-8", "replace")

    async def uptime(self) -> int:
        """Seconds Kamailio has been running (asks it over the ctl socket)."""
        data = parse_kamcmd(await self.rpc("core.uptime"))
        return _int(data.get("uptime")) if isinstance(data, dict) else 0

    async def targets(self) -> list[EdgeTarget]:
        """The workers as the dispatcher sees them now."""
        data = parse_kamcmd(await self.rpc("dispatcher.list"))
        by_uri = {w.uri: w for w in self.workers}
        found: list[EdgeTarget] = []
        for record in _as_list(data.get("RECORDS")):
            for set_ in _as_list(record.get("SET")):
                targets = set_.get("TARGETS", {})
                for dest in _as_list(targets.get("DEST") if isinstance(targets, dict) else None):
                    uri = str(dest.get("URI", ""))
                    flags = str(dest.get("FLAGS", ""))
                    worker = by_uri.get(uri)
                    state = (
                        "disabled"
                        if "D" in flags
                        else "inactive"
                        if "I" in flags
                        else "active"
                        if "A" in flags
                        else "trying"
                    )
                    found.append(
                        EdgeTarget(
                            index=worker.index if worker else -1,
                            uri=uri,
                            state=state,
                            probing="P" in flags,
                            flags=flags,
                            load=_int(_get(dest, "RUNTIME", "DLGLOAD")),
                            maxload=_int(_get(dest, "ATTRS", "MAXLOAD")),
                        )
                    )
        return sorted(found, key=lambda t: t.index)

    async def counters(self) -> dict[str, int]:
        """Kamailio's statistics (`group:name` -> value), e.g. core:rcv_requests."""
        out = await self.rpc("stats.get_statistics", "all")
        stats: dict[str, int] = {}
        for line in out.splitlines():
            name, sep, value = line.strip().partition(" = ")
            if sep and value.strip().lstrip("-").isdigit():
                stats[name.strip()] = int(value)
        return stats


LOG_KEEP_BYTES = 10 * 1024 * 1024


def rotate_log(path: Path, limit: int = LOG_KEEP_BYTES) -> None:
    """At each (re)start, a log over `limit` becomes <name>.1 (replacing the older one), so
    restarts and long lives do not fill the disk. (Within one run Kamailio appends.)"""
    try:
        if path.stat().st_size > limit:
            path.replace(path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass


def complaint(output: str) -> str:
    """Kamailio's reason for refusing to start, in one line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for pattern in (r"parse error in config file", r"bind\(", r"ERROR", r"CRITICAL", r"error"):
        for ln in lines:
            if re.search(pattern, ln):
                return _tidy(ln)
    return _tidy(lines[-1]) if lines else "no output"


def _tidy(line: str) -> str:
    # " 0(123) CRITICAL: <core> [core/cfg.y:3613]: yyerror_at(): parse error in ..." -> message
    line = re.sub(r"^\s*\d+\(\d+\)\s+", "", line)
    line = re.sub(r"^(\w+):\s+<[^>]+>\s+\[[^\]]+\]:\s+(\w+\(\):\s+)?", r"\1: ", line)
    return line


def sip_ping(host: str, port: int, timeout: float) -> bool:
    """True when something answers a SIP OPTIONS on host:port (UDP) within `timeout`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.bind(("127.0.0.1" if family == socket.AF_INET and host.startswith("127.") else "", 0))
            local_port = s.getsockname()[1]
            tag = os.urandom(4).hex()
            msg = (
                f"OPTIONS sip:{_sip_host(host)}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK{tag};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:ping@flexvoice.invalid>;tag={tag}\r\n"
                f"To: <sip:{_sip_host(host)}:{port}>\r\n"
                f"Call-ID: ping-{tag}@flexvoice\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            s.sendto(msg.encode(), (host, port))
            data = s.recv(65535)
        except OSError:
            return False
    return data.startswith(b"SIP/2.0 ")

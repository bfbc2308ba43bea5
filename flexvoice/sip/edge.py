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
restart of Kamailio. `worker_lost(n)` ends, toward the carrier, every call worker n held.

The jobs live in their own modules, re-exported here: edge_config (rendering kamailio.cfg),
edge_kamcmd (reading kamcmd's output), edge_rpc (the ctl socket), edge_proc (process helpers).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from flexvoice.config import Config
from flexvoice.errors import UserError
from flexvoice.logs import get_logger
from flexvoice.sip.addresses import WorkerAddress
from flexvoice.sip.edge_config import (
    DISPATCHER_SET,
    DS_DISABLED,
    DS_INACTIVE,
    DS_PROBING,
    MAX_REQUEST_URI,
    MAX_SIP_BODY,
    MAX_SIP_MESSAGE,
    REPO_TEMPLATE,
    ensure_dialog_db,
    render_config,
    render_dispatcher_list,
    template_path,
)
from flexvoice.sip.edge_kamcmd import EdgeDialog, EdgeTarget, parse_kamcmd
from flexvoice.sip.edge_proc import (
    LOG_KEEP_BYTES,
    complaint,
    die_with_parent,
    rotate_log,
    sip_ping,
)
from flexvoice.sip.edge_rpc import RPC_TIMEOUT, EdgeRpc
from flexvoice.sip.trunks import Trunks
from flexvoice.system import port_in_use_error

__all__ = [
    "DISPATCHER_SET",
    "DS_DISABLED",
    "DS_INACTIVE",
    "DS_PROBING",
    "LOG_KEEP_BYTES",
    "MAX_REQUEST_URI",
    "MAX_SIP_BODY",
    "MAX_SIP_MESSAGE",
    "REPO_TEMPLATE",
    "RPC_TIMEOUT",
    "Edge",
    "EdgeDialog",
    "EdgeTarget",
    "complaint",
    "die_with_parent",
    "parse_kamcmd",
    "render_config",
    "render_dispatcher_list",
    "rotate_log",
    "sip_ping",
    "template_path",
]

log = get_logger(__name__)

START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
# AF_UNIX paths are limited to 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 100


class Edge(EdgeRpc):
    """One Kamailio process: configured from the node's config, run and stopped by us."""

    def __init__(
        self,
        cfg: Config,
        workers: list[WorkerAddress],
        trunks: Trunks,
        *,
        state_dir: Path | None = None,
        relays: Sequence[WorkerAddress] = (),
    ):
        self.cfg = cfg
        self.workers = list(workers)
        self.relays = list(relays)  # conference links only: not in the callers' set
        self.trunks = trunks
        self.dir = state_dir or cfg.path("var/edge")
        self.ctl_socket = cfg.path(cfg.sip.edge.ctl_socket)
        self.config_file = self.dir / "kamailio.cfg"
        self.dispatcher_list = self.dir / "dispatcher.list"
        self.log_file = self.dir / "kamailio.log"
        self._proc: asyncio.subprocess.Process | None = None
        self._wanted: dict[int, bool] = {}
        self._pushes: set[asyncio.Task[None]] = set()
        self._endings: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.started_at = 0.0
        self.restarts = 0

    # -- configuration ----------------------------------------------------------------------
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
            render_dispatcher_list(self.workers, self.cfg.sip.workers.max_calls, down, self.relays)
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
        ensure_dialog_db(self.dir)
        return self.config_file

    def check(self) -> None:
        """Write the config and have Kamailio parse it (`kamailio -c`); UserError if it fails."""
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
        # -x tlsf: Kamailio's TLSF allocator instead of its default q_malloc (a debugging
        # allocator whose malloc/free were the edge's top functions): the edge's CPU per call
        # fell to 0.55-0.6 of what it was at 100-400 calls a second (bench edge_load, issue 17).
        cmd = [self.kamailio, "-DD", "-E", "-x", "tlsf", "-f", str(path)]
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
        if self.restarts == 0:
            await self._end_left_dialogs()

    async def _end_left_dialogs(self) -> None:
        """At the node's start, the calls the last Kamailio held when it stopped (written to
        var/edge/dialogs) belong to workers that are gone: each carrier gets a BYE now. (A
        Kamailio the running node restarts keeps its dialogs: their workers live on.)"""
        left = 0
        for worker in self.workers:
            try:
                left += await self.end_dialogs(worker, "node restarted")
            except UserError as exc:
                log.error("edge.left_dialogs_unknown", worker=worker.index, error=str(exc))
        if left:
            log.warning("edge.left_calls_ended", calls=left)

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
        for task in [*self._pushes, *self._endings]:
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

    async def set_workers(self, workers: list[WorkerAddress], up: dict[int, bool]) -> None:
        """A new set of workers (a shared edge's nodes came or went): the dispatcher list is
        rewritten and reloaded; calls stay counted (per worker, by the dialog module)."""
        self.workers = list(workers)
        self._wanted = dict(up)
        self.write_config()
        if self.up:
            await self.rpc("dispatcher.reload")

    async def settled(self) -> None:
        """Wait until every state change asked for so far has reached Kamailio."""
        pending = [*self._pushes, *self._endings]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _push_state(self, index: int, up: bool) -> None:
        worker = next(w for w in self.workers if w.index == index)
        state = "a" if up else "d"
        try:
            await self.rpc("dispatcher.set_state", state, str(DISPATCHER_SET), worker.uri)
        except UserError as exc:
            log.error("edge.set_state_failed", worker=index, up=up, error=str(exc))
            return
        log.info("edge.worker_state", worker=index, up=up)

    # -- calls of a lost worker -------------------------------------------------------------
    def worker_lost(self, index: int) -> None:
        """Worker `index` died with calls (or may have): every dialog it held is ended toward
        the carrier (BYE) at once. Returns at once; `await edge.settled()` waits for it."""
        if not self.up or self._stopping:
            return
        worker = next((w for w in self.workers if w.index == index), None)
        if worker is None:
            raise ValueError(f"no worker {index} behind this edge")
        task = asyncio.get_running_loop().create_task(self._end_dialogs(worker))
        self._endings.add(task)
        task.add_done_callback(self._endings.discard)

    async def _end_dialogs(self, worker: WorkerAddress) -> None:
        try:
            ended = await self.end_dialogs(worker, "media worker lost")
        except UserError as exc:
            log.error("edge.end_dialogs_failed", worker=worker.index, error=str(exc))
            return
        log.info("edge.worker_calls_ended", worker=worker.index, calls=ended)

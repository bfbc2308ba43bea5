"""The pool's side of the pre-forked worker template (`python -m flexvoice.sip.worker
--template`, see `template()` there): one process that has imported pjsua2 once and forks a
worker per request, in milliseconds, sharing the imported modules' memory copy-on-write.

A forked worker is handled like a subprocess (`ForkedProcess` has what the pool uses of
`asyncio.subprocess.Process`): its standard input, output and error are pipes made here and
handed to the template over a Unix socket; its exit code comes back from the template, which
is its parent. If the template dies, the pool starts workers as plain subprocesses again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import socket
import sys
from pathlib import Path
from typing import Protocol

from flexvoice.logs import get_logger

log = get_logger(__name__)


class WorkerProc(Protocol):
    """What the pool uses of a worker's process."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    stdin: asyncio.StreamWriter | None
    stdout: asyncio.StreamReader | None
    stderr: asyncio.StreamReader | None

    async def wait(self) -> int: ...

    def kill(self) -> None: ...


class ForkedProcess:
    def __init__(
        self,
        template: Template,
        pid: int,
        stdin: asyncio.StreamWriter,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
    ):
        self.template = template
        self.pid = pid
        self.stdin: asyncio.StreamWriter | None = stdin
        self.stdout: asyncio.StreamReader | None = stdout
        self.stderr: asyncio.StreamReader | None = stderr
        self.exited: asyncio.Future[int] = template.exit_future(pid)

    @property
    def returncode(self) -> int | None:
        return self.exited.result() if self.exited.done() else None

    async def wait(self) -> int:
        while not self.exited.done():
            if not self.template.alive and not running(self.pid):
                self.exited.set_result(-1)  # its parent, the template, is gone: no exit code
                break
            await asyncio.wait([self.exited], timeout=0.05)
        if self.stdin is not None:
            self.stdin.close()
        return self.exited.result()

    def kill(self) -> None:
        if not self.exited.done():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, 9)


class Template:
    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.sock: socket.socket | None = None
        self.pending: collections.deque[asyncio.Future[int]] = collections.deque()
        self.exits: dict[int, asyncio.Future[int]] = {}
        self.reader: asyncio.Task[None] | None = None
        self.alive = False

    async def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "flexvoice.sip.worker",
                "--template",
                stdin=theirs.fileno(),
                stdout=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        self.sock = ours
        self.alive = True
        self.reader = asyncio.create_task(self._read())

    def exit_future(self, pid: int) -> asyncio.Future[int]:
        fut = self.exits.get(pid)
        if fut is None:
            fut = self.exits[pid] = asyncio.get_running_loop().create_future()
        return fut

    async def _read(self) -> None:
        assert self.sock is not None
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await loop.sock_recv(self.sock, 65536)
                if not data:
                    break
                msg = json.loads(data)
                if "pid" in msg and self.pending:
                    self.pending.popleft().set_result(int(msg["pid"]))
                elif "exit" in msg:
                    fut = self.exit_future(int(msg["exit"]))
                    if not fut.done():
                        fut.set_result(int(msg["rc"]))
                    # Kept only while a ForkedProcess may still ask for it.
                    loop.call_later(60, self.exits.pop, int(msg["exit"]), None)
        except (OSError, ValueError) as exc:
            log.error("worker.template_failed", error=str(exc))
        self.alive = False
        log.warning("worker.template_gone")
        while self.pending:
            self.pending.popleft().set_exception(ConnectionError("the worker template is gone"))
        # Its workers live on (reparented): each one's end shows when its output closes, and
        # ForkedProcess.wait() then finds the process gone.

    async def spawn(self, argv: list[str], env: dict[str, str]) -> ForkedProcess:
        """Fork a worker with these arguments; its environment is the template's plus `env`."""
        if not self.alive or self.sock is None:
            raise ConnectionError("the worker template is not running")
        loop = asyncio.get_running_loop()
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        fut: asyncio.Future[int] = loop.create_future()
        try:
            request = json.dumps({"argv": argv, "env": env}).encode()
            socket.send_fds(self.sock, [request], [stdin_r, stdout_w, stderr_w])
            self.pending.append(fut)
        except OSError:
            for fd in (stdin_w, stdout_r, stderr_r):
                os.close(fd)
            raise
        finally:
            for fd in (stdin_r, stdout_w, stderr_w):
                os.close(fd)
        try:
            pid = await fut
        except ConnectionError:
            for fd in (stdin_w, stdout_r, stderr_r):
                os.close(fd)
            raise
        stdout = await _reader(loop, stdout_r)
        stderr = await _reader(loop, stderr_r)
        transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.streams.FlowControlMixin(loop=loop), os.fdopen(stdin_w, "wb", 0)
        )
        stdin = asyncio.StreamWriter(transport, protocol, None, loop)
        return ForkedProcess(self, pid, stdin, stdout, stderr)

    async def stop(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader
        self.alive = False
        if self.sock is not None:
            self.sock.close()  # the template sees the end and exits
            self.sock = None
        if self.proc is not None:
            try:
                await asyncio.wait_for(self.proc.wait(), 5.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()


def running(pid: int) -> bool:
    """The process exists and is not a zombie (exited, waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def _reader(loop: asyncio.AbstractEventLoop, fd: int) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=2**16, loop=loop)  # as asyncio's subprocesses
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(fd, "rb", 0)
    )
    return reader

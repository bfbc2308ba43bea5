"""The worker template's side (`python -m flexvoice.sip.worker --template`): fork a worker per
request from a process that has imported pjsua2 and the worker's code once, shared
copy-on-write by every worker (a fork costs milliseconds where a fresh interpreter costs a
fifth of a CPU-second, and the imported modules' memory is not paid per worker). Nothing of
PJSIP is created before the fork (libCreate runs in the child). The pool's side is
flexvoice.sip.template.

Standard input is a SEQPACKET socket from the pool. A request is JSON {"argv": [...],
"env": {...}} with three file descriptors, the worker's standard input, output and error; the
answer is {"pid": N}. When a worker exits, {"exit": N, "rc": code} follows. The template stops
when the pool closes its end."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import socket
from collections.abc import Callable
from typing import Any


def serve(run_worker: Callable[[list[str]], int]) -> int:
    """Fork `run_worker(argv)` per request until the pool goes; the template's exit code."""
    sock = socket.socket(fileno=0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def reap(_signum: int, _frame: Any) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            rc = os.waitstatus_to_exitcode(status)
            with contextlib.suppress(OSError):
                sock.send(json.dumps({"exit": pid, "rc": rc}).encode())

    signal.signal(signal.SIGCHLD, reap)
    gc.freeze()  # the collector leaves the shared objects (and their pages) alone
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, 65536, 3)
        except OSError:
            return 1
        if not data:
            return 0  # the pool is gone
        request = json.loads(data)
        # The exit report of a worker that dies at once must follow its pid, not precede it.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            sock.detach()  # fd 0 becomes the worker's standard input below
            # A process group of its own, in the template's session (which has no terminal:
            # a Ctrl-C reaches the control plane only). Not a session of its own: the kernel
            # schedules each session as a group (autogroup), so 100 workers in 100 sessions
            # were 100 groups against the control plane's one, whose event loop then waited
            # for a core half the time at 200 CPS; in one session the workers together weigh
            # as much as the control plane (bench sip_load, 200 CPS, 4 pairs alternating, load
            # 2.6-7: the loop's thread waited 3.3-4.3 s per 10.5 s step, against 4.5-5.2 s).
            os.setpgid(0, 0)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            for fd in fds:
                if fd > 2:
                    os.close(fd)
            os.environ.update(request.get("env") or {})
            rc = 1
            try:
                rc = run_worker([str(a) for a in request["argv"]])
            finally:
                os._exit(rc)
        for fd in fds:
            os.close(fd)
        with contextlib.suppress(OSError):
            sock.send(json.dumps({"pid": pid}).encode())
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})

"""A media worker's pipes to the control plane: commands in on standard input (a reader
thread queues them and wakes the main thread), events out on standard output (which PJSIP's
C code must never write to). No pjsua2 here: the worker (flexvoice.sip.worker) wires it up."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

from flexvoice.sip.protocol import COMMANDS, Message, ProtocolError, decode

# RFC 5626 keep-alive: PJSIP reads and ignores it, and its wait for events returns.
WAKE = b"\r\n\r\n"


def read_commands(
    put: Callable[[Message | None], None],
    wake_address: tuple[str, int],
    source: BinaryIO | None = None,
    needs_wake: Callable[[], bool] | None = None,
) -> None:
    """Standard input to `put` (None once it closes: the control plane is gone), each followed
    by a wake-up datagram to the worker's own SIP port, since the main thread may be blocked
    in PJSIP for seconds; `needs_wake` (asked after each command is queued) may say it is not
    (the main thread is busy, or a wake-up is on its way). Runs on its own thread until its
    input ends."""
    wake = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    wake.connect(wake_address)

    def wake_up() -> None:
        with contextlib.suppress(OSError):  # the socket buffer is full: it is awake anyway
            wake.send(WAKE)

    for line in source or sys.stdin.buffer:
        if not line.strip():
            continue
        try:
            put(decode(line, COMMANDS))
        except ProtocolError as exc:
            print(f"worker: bad command line: {exc}", file=sys.stderr, flush=True)
            continue
        if needs_wake is None or needs_wake():
            wake_up()
    put(None)
    wake_up()
    wake.close()


def take_stdout() -> Any:
    """Keep the real standard output for events only: PJSIP (C code) logs to fd 1 too, and a
    stray line there would corrupt the protocol. From here on fd 1 goes to standard error."""
    events = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    return events

"""A media worker's events on their way to the control plane, written once per turn of its loop.

Written and flushed one by one, each event cost a write(2) and woke the control plane's reader
once more. Events are queued as the worker's main thread makes them (PJSIP's callbacks, the
commands, the chores: all on that thread, see flexvoice.sip.worker) and written together, in
order, before the loop waits in PJSIP again: none waits longer than the turn that made it.
No pjsua2 here.
"""

from __future__ import annotations

from typing import BinaryIO


class EventOut:
    """Encoded event lines, queued (`pending`) until `flush` writes them in one go."""

    __slots__ = ("broken", "pending", "stream")

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        # Appended to directly by the worker's hot path (a method call per event costs).
        self.pending: list[bytes] = []
        self.broken = False  # the control plane is gone: nothing more can reach it

    def flush(self) -> None:
        """Write what is queued, oldest first. A control plane that is gone (a broken pipe)
        ends the writing quietly: the worker still has to hang its calls up and exit (its
        input closing tells it so), which an exception here would cut short."""
        if not self.pending:
            return
        lines, self.pending = self.pending, []
        if self.broken:
            return
        try:
            self.stream.write(lines[0] if len(lines) == 1 else b"".join(lines))
            self.stream.flush()
        except (OSError, ValueError):  # ValueError: the stream was closed
            self.broken = True

"""SQLite's WAL checkpoints in a thread of their own, off the event loop.

By default SQLite checkpoints inside the COMMIT that takes the WAL past 1,000 pages: on the
node's connection, that is on the event loop. A call writes about 28 WAL pages (its rows,
their indexes, its trace, the statistics' rollups: measured in bench/call_registry's set-up),
so at 200 calls a second the loop checkpointed five times a second, each copying 1,000 pages
and syncing the database file: 76-468 ms stalls under load, each delaying every call set up
meanwhile.

Here the loop's connection never checkpoints (`wal_autocheckpoint=0`); a thread with its
own connection runs a PASSIVE checkpoint every `interval` seconds, which copies each page
once however often it changed (a hot page written 200 times a second is copied once), waits
for no one and blocks no writer. sqlite3 releases the GIL while SQLite works, so the copy and
the sync run beside the loop.

A PASSIVE checkpoint never waits, so under steady writes it may never find the whole WAL
copied at the moment a writer starts, and only then does SQLite start the WAL file again from
its beginning: past `restart_frames` pages the thread asks for a RESTART checkpoint, which
holds writers (the loop's next BEGIN IMMEDIATE waits, as for any write lock) while it copies
the few pages written since its last pass and syncs, and lets the next writer start the WAL
again. The WAL stays bounded and the loop waits for one short copy instead of five long ones
a second.

Durability is unchanged: a commit is in the WAL whether or not a checkpoint copied it, and
recovery after a kill reads the WAL. PostgreSQL has no such thing: this serves the node's own
SQLite file, which exists in both modes.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from prometheus_client import Histogram

from flexvoice.logs import get_logger

log = get_logger(__name__)

CHECKPOINT_SECONDS = Histogram(
    "flexvoice_sqlite_checkpoint_seconds",
    "How long a WAL checkpoint of the node's SQLite file took (in its own thread), by mode: a "
    "restart one holds the node's writers meanwhile",
    ["mode"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)

INTERVAL = 1.0
RESTART_FRAMES = 10_000  # 40 MB of WAL with 4 KiB pages


def loop_connection_without_checkpoints(conn: sqlite3.Connection) -> None:
    """The connection on the event loop leaves checkpoints to the Checkpointer."""
    conn.execute("PRAGMA wal_autocheckpoint=0")


class Checkpointer:
    def __init__(
        self, path: Path | str, interval: float = INTERVAL, restart_frames: int = RESTART_FRAMES
    ):
        self.path = str(path)
        self.interval = interval
        self.restart_frames = restart_frames
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flexvoice-checkpoint", daemon=True)
        self.passes = 0  # completed passes (tests read it)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """The thread ends after a last checkpoint (the WAL copied as far as it can be)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=5, isolation_level=None)
        try:
            while not self._stop.wait(self.interval):
                self.checkpoint(conn)
            self.checkpoint(conn)
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """One pass: PASSIVE, then RESTART when the WAL is past its bound."""
        try:
            frames = self._timed(conn, "PASSIVE")
            if frames > self.restart_frames:
                self._timed(conn, "RESTART")
        except sqlite3.Error as exc:  # busy past the timeout, disk full: try again next time
            log.warning("storage.checkpoint_failed", error=str(exc))
        self.passes += 1

    def _timed(self, conn: sqlite3.Connection, mode: str) -> int:
        started = time.perf_counter()
        _busy, frames, _copied = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        CHECKPOINT_SECONDS.labels(mode.lower()).observe(time.perf_counter() - started)
        return int(frames)

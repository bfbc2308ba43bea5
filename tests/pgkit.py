"""A real PostgreSQL server for the tests: initdb in a temporary folder, the server on a free
loopback port, stopped by its PID. Each test gets a database of its own on it.

PostgreSQL refuses to run as root; as root (CI, this machine) the server runs as the
`postgres` user that Debian's package creates.

The PostgreSQL lane (`./run test --pg`: FLEXVOICE_TEST_DATABASE=postgresql, opt-in): every
node a test configures through tests/conftest.py's write_node_config (so every `trunk_node`
and `running_api`) gets `storage.database` on a database of one server per test process,
fresh for each folder a test keeps a node's state in.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from flexvoice.system import free_port


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    assert versions, f"{name} is missing: './run' installs it (Debian package postgresql)"
    return str(versions[-1])


@dataclass
class PgServer:
    port: int
    proc: subprocess.Popen[bytes]
    folder: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://flexvoice@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return self.url(name)


@contextlib.contextmanager
def running_postgres(durable: bool = False) -> Iterator[PgServer]:
    """The server; `durable` keeps PostgreSQL's default fsync settings (benchmarks)."""
    user = "postgres" if os.getuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="flexvoice-pg-"))
    data = folder / "data"
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    port = free_port()
    proc: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [_bin("initdb"), "-D", str(data), "-U", "flexvoice", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
            user=user,
            timeout=120,
        )
        # The tests kill importers, never the server: durability settings only cost time there.
        fast = [] if durable else ["-c", "fsync=off", "-c", "full_page_writes=off"]
        proc = subprocess.Popen(
            [
                _bin("postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={folder}",
                *fast,
                "-c",
                "max_connections=60",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(folder / "server.log", "wb"),  # noqa: SIM115 - the child keeps it
            user=user,
        )
        server = PgServer(port, proc, folder)
        deadline = time.monotonic() + 60
        while True:
            try:
                psycopg.connect(server.url(), connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (folder / "server.log").read_text(errors="replace")
                    raise AssertionError(f"PostgreSQL did not start:\n{log}") from None
                time.sleep(0.05)
        yield server
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # "fast" shutdown: ends sessions, then stops
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


# ---- the opt-in PostgreSQL lane ------------------------------------------------------------
_LANE_VALUE = os.environ.get("FLEXVOICE_TEST_DATABASE", "")
assert _LANE_VALUE in ("", "sqlite", "postgresql"), (
    f"FLEXVOICE_TEST_DATABASE={_LANE_VALUE!r}: write postgresql (or leave it unset for SQLite)"
)
LANE = _LANE_VALUE == "postgresql"
_lane_server: PgServer | None = None
_lane_stack = contextlib.ExitStack()


def shared_server() -> PgServer:
    """This test process's server, started on first use, stopped when the process exits."""
    global _lane_server
    if _lane_server is None:
        _lane_server = _lane_stack.enter_context(running_postgres())
        atexit.register(_lane_stack.close)
    return _lane_server


_lane_databases: dict[Path, str] = {}
_this_test = False  # nodes_on_postgres(): the lane's rule for one test of the normal lanes


@contextlib.contextmanager
def nodes_on_postgres() -> Iterator[None]:
    """Within, the lane's rule holds whatever FLEXVOICE_TEST_DATABASE says (the `node_engine`
    fixture: the few node-level tests the normal lane runs on both engines)."""
    global _this_test
    _this_test = True
    try:
        yield
    finally:
        _this_test = False


def lane_database(folder: Path) -> str | None:
    """In the PostgreSQL lane, the database of the node whose state lives in `folder` (fresh
    for a new folder; the same again for a node configured again there, as its SQLite file
    would be); else None."""
    if not (LANE or _this_test):
        return None
    if folder not in _lane_databases:
        _lane_databases[folder] = shared_server().new_database()
    return _lane_databases[folder]

"""Start and stop the test SMSC (tests/smsc.py) as a separate process, read what it got."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import REPO, cli_env


@dataclass
class Smsc:
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, *args: str) -> None:
        assert self.proc is None
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.smsc",
                "--port",
                str(self.port),
                "--log",
                str(self.log),
                "--stdin",
                *args,
            ],
            cwd=REPO,
            env=cli_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        assert "listening" in line, f"the SMSC did not start: {line!r}"

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def mobile_originated(self, from_: str, to: str, text: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"from": from_, "to": to, "text": text}) + "\n").encode())
        self.proc.stdin.flush()

    def received(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def count(self) -> int:
        """Submits received so far, without parsing them (cheap enough to poll)."""
        try:
            return self.log.read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0

    async def wait_received(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(got := self.received()) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the SMSC got {len(got)} submits, wanted {count}")
            await asyncio.sleep(0.05)
        return got


@contextlib.contextmanager
def running_smsc(tmp_path: Path, port: int, *args: str, start: bool = True) -> Iterator[Smsc]:
    smsc = Smsc(port, tmp_path / f"smsc-{port}.jsonl")
    if start:
        smsc.start(*args)
    try:
        yield smsc
    finally:
        smsc.stop()


def smpp_config(port: int, accounts: str = "") -> str:
    return f"""
messaging:
  gateway: smpp
  smpp: {{host: 127.0.0.1, port: {port}, system_id: flexvoice}}
  retry_base: 200ms
  retry_max: 1s
{accounts}
api: {{private_urls: true}}
"""

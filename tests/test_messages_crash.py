"""A message answered 201 survives a kill -9 of the node: the API answers only once the
transaction holding it (shared by the messages of one turn of the event loop: group commit)
is committed. Real node process, real HTTP, SIGKILL while requests are in flight."""

from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from flexvoice.system import free_port
from tests.conftest import free_port_range
from tests.nodekit import SHOP_LINE, api, launch_trunk_node, session_processes

pytestmark = [pytest.mark.sip, pytest.mark.process, pytest.mark.xdist_group("sipnode")]

NUMBER = SHOP_LINE


def test_messages_answered_201_survive_a_kill_9(tmp_path: Path) -> None:
    # No SMSC listens: every message stays queued, so what the database holds is what the
    # API accepted.
    smpp = {"host": "127.0.0.1", "port": free_port()}
    node = launch_trunk_node(
        tmp_path, free_port_range(1), settings={"messaging": {"gateway": "smpp", "smpp": smpp}}
    )
    assert node.proc is not None
    proc = node.proc
    port, key = node.port, node.key
    accepted: list[str] = []
    lock = threading.Lock()
    enough = threading.Event()
    try:

        def post(i: int) -> None:
            try:
                body = {"to": f"+3247512{i:04d}", "from": NUMBER, "body": f"m{i}"}
                status, doc = api(port, key, "POST", "/v1/messages", body)
            except OSError:
                return  # in flight when the node died: no answer, no promise
            if status == 201:
                with lock:
                    accepted.append(doc["id"])
                    if len(accepted) >= 60:
                        enough.set()

        with ThreadPoolExecutor(16) as pool:
            for i in range(400):
                pool.submit(post, i)
            assert enough.wait(120), f"only {len(accepted)} accepted"
            os.killpg(proc.pid, signal.SIGKILL)  # while requests are still in flight
            proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    assert session_processes(proc.pid) == []
    with lock:
        ids = list(accepted)
    assert len(ids) >= 60
    db = node.store()
    stored = {
        row[0]
        for row in db.execute(
            "SELECT m.id FROM messages m JOIN message_parts p ON p.message_id = m.id"
            " WHERE m.status = 'queued' AND p.status IN ('queued', 'sending')"
        )
    }
    assert set(ids) <= stored, set(ids) - stored

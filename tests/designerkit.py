"""Helpers for the designer's tests: the real node app (tests.apikit.running_api with the real
flow runtime) with designer users, and Playwright driving Debian's chromium."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flexvoice.accounts import set_designer
from flexvoice.appkeys import DB
from flexvoice.flows.deps import FlowDeps
from flexvoice.flows.runtime import FlowRuntime
from flexvoice.users import create_user
from tests.apikit import Api, running_api
from tests.conftest import REPO

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct horse battery"
MANAGER = "manager@bakery.be"
ADMIN = "owner@bakery.be"
MANAGER2 = "second@bakery.be"
ANALYST = "analyst@bakery.be"
NO_DESIGNER = "someone@other.be"
ARTIFACTS = REPO / "test-artifacts"


@dataclass
class Designer:
    api: Api
    url: str  # http://127.0.0.1:PORT
    flows_dir: Path
    runtime: FlowRuntime

    @property
    def conn(self) -> Any:
        return self.api.app[DB]


@contextlib.asynccontextmanager
async def running_designer(tmp_path: Path, deps: FlowDeps | None = None) -> AsyncIterator[Designer]:
    # Its own copy of the prompts: the designer uploads recordings into them.
    runtime = FlowRuntime(tmp_path / "flows", tmp_path / "ivr_prompts", deps)
    async with running_api(tmp_path, flows=runtime, own_prompts=True) as api:
        runtime.scan()
        conn = api.app[DB]
        set_designer(conn, "acme", True)
        create_user(conn, MANAGER, "acme", "manager", PASSWORD)
        create_user(conn, ADMIN, "acme", "administrator", PASSWORD)
        create_user(conn, MANAGER2, "acme", "manager", PASSWORD)
        create_user(conn, ANALYST, "acme", "analyst", PASSWORD)
        create_user(conn, NO_DESIGNER, "other", "manager", PASSWORD)
        server = api.client.server
        yield Designer(api, f"http://127.0.0.1:{server.port}", tmp_path / "flows", runtime)


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:120]

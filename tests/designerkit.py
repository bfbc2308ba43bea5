"""Helpers for the designer's tests: the real node app (tests.apikit.running_api with the real
flow runtime) with designer users, and Playwright driving Debian's chromium."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import Page

from flexvoice.accounts import set_designer
from flexvoice.appkeys import SHARED_DB
from flexvoice.flows import steprefs, yamledit
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
        return self.api.app[SHARED_DB]


@contextlib.asynccontextmanager
async def running_designer(tmp_path: Path, deps: FlowDeps | None = None) -> AsyncIterator[Designer]:
    # Its own copy of the prompts: the designer uploads recordings into them.
    runtime = FlowRuntime(tmp_path / "flows", tmp_path / "ivr_prompts", deps)
    async with running_api(tmp_path, flows=runtime, own_prompts=True) as api:
        runtime.scan()
        conn = api.app[SHARED_DB]
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


class Browser:
    """A cookie-keeping client, as a browser tab would be."""

    def __init__(self, d: Designer):
        self.d = d
        self.s = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def login(self, email: str, password: str = PASSWORD) -> aiohttp.ClientResponse:
        r = await self.s.post(
            self.d.url + "/designer/login",
            data={"email": email, "password": password},
            allow_redirects=False,
            headers={"Origin": self.d.url},
        )
        me = await self.get("/me")
        if r.status == 303 and me.status == 200:
            self.csrf = (await me.json())["csrf"]
        return r

    async def get(self, path: str) -> aiohttp.ClientResponse:
        return await self.s.get(self.d.url + "/designer/api" + path)

    async def post(
        self, path: str, body: Any, etag: str | None = None, csrf: str | None = None
    ) -> aiohttp.ClientResponse:
        headers = {"X-CSRF-Token": self.csrf if csrf is None else csrf, "Origin": self.d.url}
        if etag:
            headers["If-Match"] = f'"{etag}"'
        return await self.s.post(self.d.url + "/designer/api" + path, json=body, headers=headers)

    async def state(self, flow: str = "bakery-main") -> dict[str, Any]:
        r = await self.get(f"/flows/{flow}")
        assert r.status == 200, await r.text()
        doc: dict[str, Any] = await r.json()
        return doc

    async def close(self) -> None:
        await self.s.close()


Opener = Callable[..., Awaitable[Page]]


async def wait_flow(page: Page, d: Designer, flow: str) -> None:
    state = await page.evaluate("f => fetch('/designer/api/flows/' + f).then(r => r.json())", flow)
    names, _ = expected_graph(state["text"])
    await page.wait_for_selector(f'.react-flow__node[data-id="{names[-1]}"]')


def node(page: Page, step: str) -> Any:
    return page.locator(f'.react-flow__node[data-id="{step}"]')


def expected_graph(text: str) -> tuple[list[str], set[tuple[str, str]]]:
    """Steps and (source, target) edges of a flow, computed here from the YAML and the schema,
    independently of the page's JavaScript."""
    doc = steprefs.plain(yamledit.load(text))
    steps = steprefs.steps_view(doc)
    names = [s["name"] for s in steps]
    edges = {("__start", doc["start"])}
    for s in steps:
        for path in steprefs.step_refs(s["verb"], s["body"]):
            target = s["body"]
            for key in path:
                target = target[key]
            if target in names:
                edges.add((s["name"], target))
    return names, edges

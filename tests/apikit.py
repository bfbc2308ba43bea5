"""Helpers for the REST API tests: a real node application (build_app with the components the
API needs) served over HTTP on a loopback port, keys per role, and stand-ins for the two
parts the API drives but does not own: the SIP layer's Originator and the flow runtime."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from flexvoice.accounts import create_account, get_account
from flexvoice.api.keys import create_key
from flexvoice.appkeys import FLOWS, NUMBERS, ORIGINATOR, RECORDINGS, SHARED_DB
from flexvoice.callcontrol import CallObserver, DialAttempt
from flexvoice.config import load_config
from flexvoice.node.api import api_component
from flexvoice.node.assembly import build_app
from flexvoice.node.messaging import messaging_component, verify_component
from flexvoice.node.numbers import numbers_component
from flexvoice.node.recordings import conferences_component, recordings_component
from flexvoice.node.shared import database_component, tariffs_component
from flexvoice.node.status import ServeOptions
from flexvoice.node.usage import usage_component
from flexvoice.recordings.wav import write_silence
from tests.conftest import REPO, write_node_config

ROLES = ("admin", "developer", "finance", "analyst", "manager")
ACME_NUMBER = "+3226001000"
OTHER_NUMBER = "+3226002000"


class FakeLeg:
    """An answered leg that, like the SIP layer's, reports its own end to the observer."""

    def __init__(self, call_id: str, to: str, caller: str, observer: CallObserver):
        self.call_id = call_id
        self.direction = "outbound"
        self.caller = caller
        self.callee = to
        self.observer = observer
        self.hung_up = asyncio.Event()

    @property
    def answered(self) -> bool:
        return True

    async def hangup(
        self, sip_status: int = 200, reason: str = "normal", *, ended_by: str = "flow"
    ) -> None:
        if self.hung_up.is_set():
            return
        self.hung_up.set()
        self.observer.call_event(
            self.call_id,
            "ended",
            {"sip_status": 200, "reason": "Normal call clearing", "ended_by": ended_by},
        )


@dataclass
class FakeOriginator:
    """Behaves like the SIP layer: reports ringing, then answers or fails as scripted by the
    destination number's last digit: 0 answers, 6 busy (486), 8 no answer (480), 9 hangs on
    ringing until cancelled."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    allowed_caller_ids: tuple[str, ...] = ()  # as a trunk's caller_id.allowed; () = any

    async def hangup(self, call_id: str, ended_by: str) -> bool:
        return False  # it holds no inbound calls

    def caller_id_refusal(self, caller_id: str) -> str | None:
        if not self.allowed_caller_ids or caller_id in self.allowed_caller_ids:
            return None
        return f"from: {caller_id} is not in the trunk's caller_id.allowed"

    async def originate(
        self,
        to: str,
        caller_id: str,
        *,
        ring_timeout: float,
        call_id: str | None = None,
        observer: CallObserver | None = None,
        account: str | None = None,
    ) -> tuple[Any, DialAttempt]:
        self.calls.append(
            {"to": to, "from": caller_id, "ring_timeout": ring_timeout, "account": account}
        )
        assert call_id is not None and observer is not None
        await asyncio.sleep(0.01)
        observer.call_event(call_id, "ringing", {"sip_status": 180})
        last = to[-1]
        if last == "9":
            await asyncio.sleep(3600)
        if last == "6":
            observer.call_event(call_id, "ended", {"sip_status": 486, "cause": "Busy Here"})
            return None, DialAttempt(to, "busy", 486, "Busy Here")
        if last == "8":
            return None, DialAttempt(to, "no-answer", 480, "ring_timeout")
        observer.call_event(call_id, "answered", {"sip_status": 200})
        return FakeLeg(call_id, to, caller_id, observer), DialAttempt(to, "completed", 200, "OK")


@dataclass
class FakeFlows:
    """Runs a 'flow' by reporting two steps, then holding the call `hold` seconds."""

    hold: float = 0.05
    # The flows it "has": a call naming another is refused (422 unknown-flow) by the API.
    flows: dict[str, Any] = field(
        default_factory=lambda: dict.fromkeys(("support", "hello", "notify", "x"))
    )
    started: list[tuple[str, str]] = field(default_factory=list)
    documents: dict[str, Any] = field(default_factory=dict)  # call id -> flow_inline/_url Flow

    async def start_call(
        self,
        leg: Any,
        flow_name: str,
        *,
        account: str,
        variables: dict[str, str] | None = None,
        observer: Any = None,
        flow: Any = None,
    ) -> None:
        self.started.append((leg.call_id, flow_name))
        if flow is not None:
            self.documents[leg.call_id] = flow
        observer.call_event(leg.call_id, "step", {"step": "welcome", "verb": "play"})
        await asyncio.sleep(self.hold)
        observer.call_event(leg.call_id, "step", {"step": "bye", "verb": "hangup"})


@dataclass
class Api:
    client: TestClient[web.Request, web.Application]
    app: web.Application
    keys: dict[str, str]  # "acme:developer" -> key text
    originator: FakeOriginator | None
    flows: Any  # FakeFlows, or a real FlowRuntime when a test passed one

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


@contextlib.asynccontextmanager
async def running_api(
    tmp_path: Path,
    *,
    extra_config: str = "",
    originator: bool = True,
    flows: Any = None,
    usage: bool = False,
    database: str | None = None,
    own_prompts: bool = False,
) -> AsyncIterator[Api]:
    """A node's API in-process; `database` (a postgresql:// URL) shares accounts, keys,
    numbers and usage with other nodes, the rest stays in tmp_path's SQLite file."""
    config = write_node_config(tmp_path, extra_config, database=database)
    # PUT /v1/flows writes into the flows folder: a copy of the repository's, never the real one.
    flows_dir = tmp_path / "flows"
    if not flows_dir.exists():
        shutil.copytree(REPO / "flows", flows_dir)
    text = config.read_text()
    assert f"flows: {REPO}/flows" in text
    text = text.replace(f"flows: {REPO}/flows", f"flows: {flows_dir}")
    if own_prompts:  # a test that uploads prompts writes into a copy of ivr_prompts
        shutil.copytree(REPO / "ivr_prompts", tmp_path / "ivr_prompts", dirs_exist_ok=True)
        text = text.replace(f"prompts: {REPO}/ivr_prompts", f"prompts: {tmp_path}/ivr_prompts")
    config.write_text(text)
    cfg = load_config(config, environ={})
    fake = FakeOriginator() if originator else None
    fake_flows = flows or FakeFlows()

    async def wire(app: web.Application) -> AsyncIterator[None]:
        # Stand-ins for the flow runtime and the SIP pool's originator.
        if fake is not None:
            app[ORIGINATOR] = fake
        app[FLOWS] = fake_flows
        yield

    # The node as `flexvoice serve` builds it, without the edge and the SIP pool (metering
    # only when a test asks for it).
    metering = [usage_component] if usage else []
    components = [
        database_component,
        tariffs_component,
        *metering,
        numbers_component,
        wire,
        api_component,
        messaging_component,
        verify_component,
        recordings_component,
        conferences_component,
    ]
    app = build_app(cfg, components, ServeOptions(edge=False))
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    conn = app[SHARED_DB]
    keys: dict[str, str] = {}
    for account, number in (("acme", ACME_NUMBER), ("other", OTHER_NUMBER)):
        if get_account(conn, account) is None:  # a second node on the same database
            create_account(conn, account, "flexio-payu")
        app[NUMBERS].put(number, account, "support")
        for role in ROLES:
            keys[f"{account}:{role}"] = create_key(conn, account, role)[1]
    try:
        yield Api(client, app, keys, fake, fake_flows)
    finally:
        await client.close()


def add_recording(api: Api, account: str, call_id: str, seconds: float = 1.5) -> str:
    """A recording closed the way a worker leaves one (a WAV on disk), through the service."""
    service = api.app[RECORDINGS]
    row, path = service.open(account, call_id, "call")
    write_silence(path, seconds)
    return service.close(row.id).id


async def wait_status(api: Api, who: str, call_id: str, want: set[str], timeout: float = 5) -> Any:
    return await wait_resource(api, who, f"/v1/calls/{call_id}", want, timeout)


async def wait_resource(api: Api, who: str, path: str, want: set[str], timeout: float = 5) -> Any:
    """GET `path` until its `status` is one of `want` (a call, a message, ...)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        r = await api.client.get(path, headers=api.auth(who))
        doc = await r.json()
        if doc["status"] in want:
            return doc
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{path} stayed {doc['status']}, wanted {want}: {doc}")
        await asyncio.sleep(0.02)


P = "urn:flexvoice:problem:"


async def problem(resp: Any, status: int, slug: str, field: str | None = None) -> dict[str, Any]:
    text = await resp.text()
    assert resp.status == status, text
    assert resp.headers["Content-Type"].startswith("application/problem+json"), text
    doc: dict[str, Any] = json.loads(text)
    assert doc["type"] == P + slug, doc
    assert doc["status"] == status and doc["detail"] and doc["title"]
    if field is not None:
        assert doc.get("field") == field, doc
    return doc

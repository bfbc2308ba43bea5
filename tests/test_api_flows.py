"""/v1/flows and flow documents on POST /v1/calls, over HTTP against the real node app."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from flexvoice.appkeys import CALLS
from flexvoice.flows.runtime import FlowRuntime
from flexvoice.flows.validate import validate_file
from tests.apikit import ACME_NUMBER, Api, problem, running_api, wait_status
from tests.conftest import REPO

HELLO = """# A comment that must survive the round trip
flow: hello
description: Says hello
start: greet
steps:
  greet:
    play: {say: "Hello there"}
"""
BROKEN = """flow: hello
start: greet
steps:
  greet:
    play: {say: "Hi", then: nowhere}
  bye:
    hangup: {sip_status: 99}
"""
YAML = {"Content-Type": "application/yaml"}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    # The real flow runtime (no watcher: PUT loads what it writes), placing no calls here.
    runtime = FlowRuntime(tmp_path / "flows", REPO / "ivr_prompts")
    async with running_api(tmp_path, flows=runtime) as a:
        runtime.scan()
        yield a


def runtime_of(api: Api) -> FlowRuntime:
    runtime = api.flows
    assert isinstance(runtime, FlowRuntime)
    return runtime


async def put(api: Api, name: str, text: str, who: str = "acme:developer") -> Any:
    return await api.client.put(
        f"/v1/flows/{name}", data=text.encode(), headers={**YAML, **api.auth(who)}
    )


@pytest.mark.process
async def test_list_read_and_draw_the_node_flows(api: Api) -> None:
    r = await api.client.get("/v1/flows", headers=api.auth("acme:developer"))
    assert r.status == 200, await r.text()
    flows = {f["name"]: f for f in (await r.json())["flows"]}
    # bakery.yaml holds flow bakery-main: flows are known by their name, not their file.
    bakery = flows["bakery-main"]
    assert bakery["file"] == "bakery.yaml" and bakery["valid"] is True
    assert bakery["serving_digest"] == bakery["digest"]
    r = await api.client.get("/v1/flows/bakery-main", headers=api.auth("acme:admin"))
    assert r.status == 200 and r.headers["Content-Type"].startswith("application/yaml")
    assert await r.text() == (REPO / "flows" / "bakery.yaml").read_text()
    r = await api.client.get("/v1/flows/bakery-main/diagram.svg", headers=api.auth("acme:admin"))
    assert r.status == 200 and r.headers["Content-Type"] == "image/svg+xml"
    svg = await r.text()
    assert "<svg" in svg and "Main line of the bakery" in svg
    for path in ("/v1/flows/nope", "/v1/flows/nope/diagram.svg", "/v1/flows/Bad%20Name"):
        r = await api.client.get(path, headers=api.auth("acme:developer"))
        await problem(r, 404, "not-found", "name")


async def test_put_creates_then_replaces_and_the_runtime_serves_it(
    api: Api, tmp_path: Path
) -> None:
    r = await put(api, "hello", HELLO)
    assert r.status == 201, await r.text()
    assert r.headers["Location"] == "/v1/flows/hello"
    doc = await r.json()
    digest = hashlib.sha256(HELLO.encode()).hexdigest()
    assert doc["valid"] and doc["digest"] == digest and doc["serving_digest"] == digest
    assert (tmp_path / "flows" / "hello.yaml").read_text() == HELLO
    assert runtime_of(api).flows["hello"].digest == digest
    assert not [p for p in (tmp_path / "flows").iterdir() if p.name.endswith(".tmp")]
    changed = HELLO.replace("Hello there", "Good morning")
    r = await put(api, "hello", changed)
    assert r.status == 200, await r.text()
    r = await api.client.get("/v1/flows/hello", headers=api.auth("acme:developer"))
    assert await r.text() == changed
    assert runtime_of(api).flows["hello"].digest == hashlib.sha256(changed.encode()).hexdigest()


async def test_an_invalid_flow_is_refused_like_the_cli_and_changes_nothing(
    api: Api, tmp_path: Path
) -> None:
    assert (await put(api, "hello", HELLO)).status == 201
    r = await put(api, "hello", BROKEN)
    doc = await problem(r, 422, "invalid-flow", "body")
    got = [(e["line"], e["column"], e["detail"]) for e in doc["errors"]]
    # Exactly what `flexvoice flows validate` says about the same text.
    cli_file = tmp_path / "cli.yaml"
    cli_file.write_text(BROKEN)
    cli = validate_file(cli_file, REPO / "ivr_prompts")
    assert got == [(p.line, p.column, p.message) for p in cli.problems]
    assert len(got) == 2 and got[0][:2] == (5, 29) and "nowhere" in got[0][2]
    assert "line 5 column 29" in doc["detail"]
    # The valid version stays on disk and keeps serving.
    assert (tmp_path / "flows" / "hello.yaml").read_text() == HELLO
    digest = hashlib.sha256(HELLO.encode()).hexdigest()
    assert runtime_of(api).flows["hello"].digest == digest
    # A syntax error is positioned too.
    r = await put(api, "hello", "flow: hello\nsteps: [\n")
    doc = await problem(r, 422, "invalid-flow", "body")
    assert doc["errors"][0]["line"] == 3 and "YAML syntax" in doc["errors"][0]["detail"]


async def test_put_refuses_what_it_cannot_take(api: Api) -> None:
    r = await put(api, "other-name", HELLO)
    doc = await problem(r, 422, "invalid-flow", "flow")
    assert "'hello'" in doc["detail"] and "'other-name'" in doc["detail"]
    r = await api.client.put(
        "/v1/flows/hello", json={"flow": "hello"}, headers=api.auth("acme:developer")
    )
    await problem(r, 415, "unsupported-media-type", "Content-Type")
    r = await put(api, "Bad_Name", HELLO)
    await problem(r, 422, "invalid-field", "name")
    # bakery.yaml is taken by flow bakery-main: flow 'bakery' cannot overwrite it.
    r = await put(api, "bakery", HELLO.replace("flow: hello", "flow: bakery"))
    await problem(r, 409, "conflict", "name")
    r = await put(api, "hello", "x" * (1024 * 1024 + 1))
    await problem(r, 413, "body-too-large")
    assert "hello" not in runtime_of(api).flows


@pytest.mark.parametrize("role", ["finance", "analyst"])
async def test_only_developers_and_admins_see_flows(api: Api, role: str) -> None:
    for method, path in [
        ("GET", "/v1/flows"),
        ("GET", "/v1/flows/bakery-main"),
        ("GET", "/v1/flows/bakery-main/diagram.svg"),
    ]:
        r = await api.client.request(method, path, headers=api.auth(f"acme:{role}"))
        await problem(r, 403, "forbidden")
    await problem(await put(api, "hello", HELLO, f"acme:{role}"), 403, "forbidden")
    # Flow files name no owner: another account's developer sees the same flows.
    assert (await put(api, "hello", HELLO, "acme:admin")).status == 201
    r = await api.client.get("/v1/flows/hello", headers=api.auth("other:developer"))
    assert r.status == 200


# ---- flow_inline and flow_url on POST /v1/calls ---------------------------------------------

INLINE = {"flow": "hello", "start": "greet", "steps": {"greet": {"play": {"say": "Hi"}}}}


@pytest.fixture
async def fake_api(tmp_path: Path) -> AsyncIterator[Api]:
    # The test's document server runs on loopback: allowed here, refused by default.
    async with running_api(tmp_path, extra_config="api: {private_urls: true}\n") as a:
        yield a


async def call_with(api: Api, **flow: Any) -> Any:
    body = {"to": "+32475123450", "from": ACME_NUMBER, **flow}
    return await api.client.post("/v1/calls", json=body, headers=api.auth("acme:developer"))


async def test_flow_inline_is_validated_then_run(fake_api: Api) -> None:
    api = fake_api
    r = await call_with(api, flow_inline=INLINE)
    assert r.status == 201, await r.text()
    call = await r.json()
    assert call["flow"] == "hello"
    await wait_status(api, "acme:developer", call["id"], {"completed"})
    assert api.flows.documents[call["id"]].name == "hello"
    kinds = [e["kind"] for e in api.app[CALLS].events(call["id"])]
    assert "flow_document" in kinds
    broken = {**INLINE, "steps": {"greet": {"play": {"say": "Hi", "then": "nowhere"}}}}
    r = await call_with(api, flow_inline=broken)
    doc = await problem(r, 422, "invalid-flow", "flow_inline")
    assert "nowhere" in doc["errors"][0]["detail"] and doc["errors"][0]["line"] > 0
    assert len(api.app[CALLS].list("acme")) == 1  # nothing placed for the invalid one


async def test_flow_url_and_status_callback_on_private_networks_are_refused(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        for url in (
            "http://127.0.0.1:8080/healthz",
            "http://10.0.0.5/flow.yaml",
            "http://[::1]/flow.yaml",
            "http://169.254.169.254/latest/meta-data",
        ):
            r = await call_with(api, flow_url=url)
            doc = await problem(r, 422, "invalid-field", "flow_url")
            assert "loopback, private or reserved" in doc["detail"], doc
        r = await call_with(api, flow="notify", status_callback="http://192.168.1.10/hook")
        doc = await problem(r, 422, "invalid-field", "status_callback")
        assert "loopback, private or reserved" in doc["detail"], doc
        assert api.app[CALLS].list("acme") == []


async def test_flow_url_is_fetched_validated_then_run(fake_api: Api) -> None:
    api = fake_api

    async def serve(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "big":
            return web.Response(text="#" * (300 * 1024))
        if name == "broken":
            return web.Response(text=BROKEN, content_type="application/yaml")
        if name == "hello":
            return web.Response(text=HELLO, content_type="application/yaml")
        return web.Response(status=404)

    site = web.Application()
    site.router.add_get("/{name}.yaml", serve)
    server = TestServer(site, host="127.0.0.1")
    await server.start_server()
    try:
        r = await call_with(api, flow_url=str(server.make_url("/hello.yaml")))
        assert r.status == 201, await r.text()
        call = await r.json()
        await wait_status(api, "acme:developer", call["id"], {"completed"})
        assert api.flows.documents[call["id"]].digest == hashlib.sha256(HELLO.encode()).hexdigest()
        r = await call_with(api, flow_url=str(server.make_url("/broken.yaml")))
        doc = await problem(r, 422, "invalid-flow", "flow_url")
        assert (doc["errors"][0]["line"], doc["errors"][0]["column"]) == (5, 29)
        for name, why in [("missing", "HTTP 404"), ("big", "larger than")]:
            r = await call_with(api, flow_url=str(server.make_url(f"/{name}.yaml")))
            doc = await problem(r, 422, "invalid-field", "flow_url")
            assert why in doc["detail"], doc
        r = await call_with(api, flow_url="http://127.0.0.1:9/nothing-listens.yaml")
        await problem(r, 422, "invalid-field", "flow_url")
        assert len(api.app[CALLS].list("acme")) == 1
    finally:
        await server.close()

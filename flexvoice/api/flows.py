"""/v1/flows: the node's YAML call flows: list, read, replace (validated first), draw, simulate,
list revisions. One job, the HTTP resource /v1/flows (its handlers, and the 422 an invalid
flow document gets, here and in POST /v1/calls); the flows folder they read and write is
flexvoice.api.flowfiles, the simulation they answer with flexvoice.api.flowsim.

Flows are files in the node's flows folder (`paths.flows`), and a flow file names no owner:
every account's developers (and admins) see and edit the same set, as `flexvoice flows` does on
the node. Analysts and finance do not see flows (their keys read calls and usage).

A flow sent with PUT goes through `validate_text`, the function behind
`flexvoice flows validate` and the runtime's loader, so the API accepts exactly what the CLI
and the runtime accept. An invalid flow is answered with a 422 listing every problem with
its line and column, and the file on disk is not touched; a valid one is written atomically
(a temporary file renamed over the old one), so the runtime never reads half a flow.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import Field

from flexvoice.api import flowfiles
from flexvoice.api.flowsim import SimulateRequest, SimulateResult, simulate
from flexvoice.api.framework import PRINCIPAL, Resource, read_body, request_body
from flexvoice.api.models import FlowList, FlowResource
from flexvoice.api.models import Resource as ResourceModel
from flexvoice.api.problems import TYPE_PREFIX, ProblemError
from flexvoice.appkeys import SHARED_DB
from flexvoice.errors import Problem
from flexvoice.flows import revisions
from flexvoice.flows.model import Flow
from flexvoice.flows.render import to_dot
from flexvoice.flows.validate import Validation, validate_text
from flexvoice.numbers import FLOW_NAME_RE
from flexvoice.offloop import parse_off_loop

resource = Resource("flows", "YAML call flows: list, read, validate and replace, draw")

READ = frozenset({"developer"})
WRITE = frozenset({"developer"})
YAML_TYPES = ("application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml")
RENDER_TIMEOUT_S = 10.0


def _resource(request: web.Request, entry: flowfiles.Entry) -> FlowResource:
    runtime = flowfiles.runtime_of(request)
    serving = runtime.flows.get(entry.name) if runtime is not None else None
    flow = entry.validation.flow
    return FlowResource.model_validate(
        {
            "name": entry.name,
            "file": entry.path.name,
            "description": flow.description if flow is not None else "",
            "valid": flow is not None,
            "digest": hashlib.sha256(entry.text.encode()).hexdigest(),
            "serving_digest": serving.digest if serving is not None else None,
            "problems": [_problem_dict(p) for p in entry.validation.problems],
            "yaml_url": f"/v1/flows/{entry.name}",
            "diagram_url": f"/v1/flows/{entry.name}/diagram.svg",
        }
    )


def _problem_dict(p: Problem) -> dict[str, Any]:
    return {"line": p.line, "column": p.column, "message": p.message, "severity": p.severity}


def invalid_flow(res: Validation, field: str, where: str) -> ProblemError:
    """The 422 for a flow document with errors: each problem with its line and column, the
    way `flexvoice flows validate` prints them."""
    errors = [
        {
            "type": TYPE_PREFIX + "invalid-flow",
            "field": field,
            "detail": p.message,
            "line": p.line,
            "column": p.column,
            "severity": p.severity,
        }
        for p in res.problems
    ]
    first = (res.errors or res.problems or [Problem(where, 0, 0, "not a flow document")])[0]
    at = f"line {first.line} column {first.column}: " if first.line > 0 else ""
    count = len(res.errors)
    return ProblemError(
        "invalid-flow",
        f"{where} has {count} error(s), listed in errors with line and column; the first: "
        f"{at}{first.message}",
        field=field,
        errors=errors,
    )


async def checked_flow(text: str, source: str, prompts_dir: Path, field: str, where: str) -> Flow:
    """Validate a flow document with the CLI's validator (in a thread: parsing never holds
    the event loop); its Flow, or the 422."""
    res = await parse_off_loop(validate_text, text, source, prompts_dir)
    if res.flow is None:
        raise invalid_flow(res, field, where)
    return res.flow


@resource.op(
    "GET",
    "/flows",
    summary="List the flows",
    roles=READ,
    response=FlowList,
    errors=(401, 403, 429),
)
async def list_flows(request: web.Request) -> web.Response:
    """Every flow file of the node, validated as `flexvoice flows validate` does, with the
    version calls run now (an invalid edit keeps the last valid version serving)."""
    flows_dir, prompts_dir = flowfiles.flow_dirs(request)
    entries = await flowfiles.entries(flows_dir, prompts_dir)
    doc = FlowList(flows=[_resource(request, e) for e in entries])
    return web.json_response(doc.model_dump())


@resource.op(
    "GET",
    "/flows/{name}",
    summary="Read a flow's YAML",
    roles=READ,
    produces="application/yaml",
    errors=(401, 403, 404, 429),
)
async def get_flow(request: web.Request) -> web.Response:
    """The flow file as it is on disk (what PUT wrote, comments included)."""
    entry = await flowfiles.find_flow(request)
    response = web.Response(text=entry.text, content_type="application/yaml", charset="utf-8")
    response.headers["ETag"] = f'"{revisions.etag(entry.text)}"'
    return response


@resource.op(
    "PUT",
    "/flows/{name}",
    summary="Create or replace a flow",
    roles=WRITE,
    consumes=YAML_TYPES,
    response=FlowResource,
    errors=(401, 403, 409, 412, 413, 415, 422, 429),
)
async def put_flow(request: web.Request) -> web.Response:
    """The body is the flow's YAML (Content-Type application/yaml or text/yaml); its `flow:`
    must be the name in the URL. Validated like `flexvoice flows validate`: with errors, 422
    lists each with line and column and nothing changes; valid (warnings allowed), it
    replaces the file atomically and the next call runs it. 201 when new, else 200.
    With `If-Match` (the ETag of GET), a flow changed meanwhile is refused with 412.
    Each replacement is recorded as a revision (GET /v1/flows/{name}/revisions)."""
    name = request.match_info["name"]
    if not FLOW_NAME_RE.match(name):
        raise ProblemError(
            "invalid-field",
            f"name: '{name[:80]}' is not a flow name; use lower-case letters, digits, - "
            "and _, at most 63 characters",
            field="name",
        )
    if request.content_type not in YAML_TYPES:
        raise ProblemError(
            "unsupported-media-type",
            f"send the flow as YAML with Content-Type: application/yaml (got "
            f"'{request.content_type}')",
            field="Content-Type",
        )
    raw = await read_body(request)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProblemError(
            "invalid-flow", f"the flow is not UTF-8 text (byte {exc.start})", field="body"
        ) from None
    flows_dir, prompts_dir = flowfiles.flow_dirs(request)
    # Parsing and validating run in a thread (the event loop keeps serving calls and other
    # requests meanwhile); one PUT at a time per node, so two cannot interleave their checks
    # and renames.
    async with flowfiles.write_lock(request.app):
        target, created, current, res = await parse_off_loop(
            flowfiles.check_put, flows_dir, prompts_dir, name, text
        )
        check_if_match(request, current)
        if res.flow is None:
            raise invalid_flow(res, "body", "the flow")
        if res.flow.name != name:
            line = next((p for p in flowfiles.DECLARED.finditer(text)), None)
            where = f" (line {text[: line.start()].count(chr(10)) + 1})" if line else ""
            raise ProblemError(
                "invalid-flow",
                f"flow: the document is flow '{res.flow.name}'{where} but the URL says "
                f"'{name}'; make them the same (to rename a flow, PUT it under its new name)",
                field="flow",
            )
        await asyncio.to_thread(flowfiles.write_atomically, target, raw)
        runtime = flowfiles.runtime_of(request)
        if runtime is not None:
            runtime.load_file(target, res)  # the next call runs it, without waiting for the poll
        principal = request[PRINCIPAL]
        revisions.record(
            request.config_dict[SHARED_DB],
            name,
            text,
            f"key {principal.key_id} ({principal.account})",
            "PUT /v1/flows",
        )
    entry = flowfiles.Entry(target, name, text, res)
    response = web.json_response(
        _resource(request, entry).model_dump(), status=201 if created else 200
    )
    response.headers["Location"] = f"/v1/flows/{name}"
    response.headers["ETag"] = f'"{revisions.etag(text)}"'
    return response


def check_if_match(request: web.Request, current: str | None) -> None:
    """412 when If-Match names another version than `current` (None: no such flow yet)."""
    wanted = request.headers.get("If-Match")
    if wanted is None:
        return
    tags = {t.strip().removeprefix("W/").strip('"') for t in wanted.split(",")}
    if "*" in tags and current is not None:
        return
    if current is None or revisions.etag(current) not in tags:
        raise ProblemError(
            "precondition-failed",
            "the flow changed since you read it (If-Match does not match its ETag); GET it "
            "again, merge your change and retry",
            field="If-Match",
        )


@resource.op(
    "GET",
    "/flows/{name}/diagram.svg",
    summary="Draw a flow",
    roles=READ,
    produces="image/svg+xml",
    errors=(401, 403, 404, 409, 429, 503),
)
async def flow_diagram(request: web.Request) -> web.Response:
    """The flow as a Graphviz diagram (as `flexvoice flows render`), every branch labelled.
    When the file has errors, the version calls run now is drawn; with none, 409."""
    entry = await flowfiles.find_flow(request)
    flow = entry.validation.flow
    runtime = flowfiles.runtime_of(request)
    if flow is None and runtime is not None:
        flow = runtime.flows.get(entry.name)
    if flow is None:
        raise ProblemError(
            "conflict",
            f"flow '{entry.name}' has errors and no valid version to draw; GET "
            "/v1/flows lists them, PUT a fixed version",
            field="name",
        )
    binary = shutil.which("dot")
    if binary is None:
        raise ProblemError(
            "service-unavailable",
            "Graphviz 'dot' is not installed on this node (./run installs it)",
            headers={"Retry-After": "3600"},
        )
    proc = await asyncio.create_subprocess_exec(
        binary,
        "-Tsvg",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        svg, err = await asyncio.wait_for(proc.communicate(to_dot(flow).encode()), RENDER_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ProblemError(
            "service-unavailable", "drawing the flow took too long; try again later"
        ) from None
    if proc.returncode != 0:
        raise RuntimeError(f"dot failed: {err.decode(errors='replace').strip()}")
    return web.Response(body=svg, content_type="image/svg+xml")


# ---- simulate -------------------------------------------------------------------------------


@resource.op(
    "POST",
    "/flows/{name}/simulate",
    summary="Simulate a call through a flow",
    roles=READ,
    body=SimulateRequest,
    response=SimulateResult,
    errors=(400, 401, 403, 404, 409, 422, 429, 503),
)
async def simulate_call(request: web.Request) -> web.Response:
    """A dry run of the flow on disk, as `flexvoice flows simulate`: no SIP and no charge, the
    clock jumps instead of waiting. Say when the call happens (`at`), what the caller presses
    and how each dial ends; the answer lists every step taken with the reason."""
    entry = await flowfiles.find_flow(request)
    if entry.validation.flow is None:
        raise invalid_flow(entry.validation, "name", f"flows/{entry.path.name}")
    _, prompts_dir = flowfiles.flow_dirs(request)
    result = await simulate(
        entry.validation.flow, prompts_dir, request_body(request, SimulateRequest)
    )
    return web.json_response(result.model_dump())


# ---- revisions ------------------------------------------------------------------------------


class RevisionResource(ResourceModel):
    id: int
    flow: str
    digest: str = Field(description="sha256 of the published text")
    author: str = Field(description="the designer user's e-mail, or the API key that PUT it")
    message: str
    created_at: str


class RevisionList(ResourceModel):
    revisions: list[RevisionResource]


@resource.op(
    "GET",
    "/flows/{name}/revisions",
    summary="List a flow's revisions",
    roles=READ,
    response=RevisionList,
    errors=(401, 403, 404, 429),
)
async def list_revisions(request: web.Request) -> web.Response:
    """Every publication of the flow, newest first: from the designer, a restore, or a PUT."""
    entry = await flowfiles.find_flow(request)
    rows = revisions.revisions(request.config_dict[SHARED_DB], entry.name)
    doc = RevisionList.model_validate({"revisions": [r.summary() for r in rows]})
    return web.json_response(doc.model_dump())

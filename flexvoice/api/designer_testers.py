"""Test callers: numbers (the team's own phones) that hear a flow's draft when they call any of
the account's numbers running that flow; everyone else hears what is published. The list is
kept per flow in the node's database; the flow runtime asks through FlowDeps.draft_for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from flexvoice import e164
from flexvoice.api import flowfiles
from flexvoice.api.designer_session import designer_op
from flexvoice.api.designer_session import json_response as _json
from flexvoice.api.framework import parse_json_body, read_body
from flexvoice.api.models import E164
from flexvoice.appkeys import CONFIG, FLOWS, SHARED_DB
from flexvoice.flows import revisions
from flexvoice.flows.model import Flow
from flexvoice.flows.runtime import FlowRuntime
from flexvoice.logs import get_logger
from flexvoice.offloop import parse_off_loop
from flexvoice.storage.engine import Connection

log = get_logger(__name__)
routes = web.RouteTableDef()


class Testers(BaseModel):
    model_config = ConfigDict(extra="forbid")
    callers: list[E164] = Field(max_length=50, description="phones that hear the draft")


@routes.get("/designer/api/flows/{name}/testers")
@designer_op()
async def get_testers(request: web.Request) -> web.StreamResponse:
    entry = await flowfiles.find_flow(request)
    return _json({"callers": revisions.testers(request.config_dict[SHARED_DB], entry.name)})


@routes.put("/designer/api/flows/{name}/testers")
@designer_op(edit=True, flow_lock=False)
async def put_testers(request: web.Request) -> web.StreamResponse:
    body = parse_json_body(await read_body(request), Testers)
    entry = await flowfiles.find_flow(request)
    callers = sorted({e164.from_network(c) or c for c in body.callers})
    revisions.set_testers(request.config_dict[SHARED_DB], entry.name, callers)
    return _json({"callers": callers})


def draft_lookup(conn: Connection, flows_dir: Path, prompts_dir: Path) -> Any:
    """FlowDeps.draft_for: the validated draft of `flow` when `caller` is one of its test
    callers and the draft is valid (an invalid draft is not run: the caller hears the
    published flow, as everyone does)."""

    async def draft_for(flow: str, caller: str) -> Flow | None:
        number = e164.from_network(caller) or caller
        if number not in revisions.testers(conn, flow):
            return None
        draft = revisions.get_draft(conn, flow)
        if draft is None:
            return None
        entries = await flowfiles.entries(flows_dir, prompts_dir)
        entry = next((e for e in entries if e.name == flow), None)
        if entry is None:
            return None
        res = await parse_off_loop(
            flowfiles.validated,
            draft.text,
            f"flows/{entry.path.name}",
            prompts_dir,
            flowfiles.prompts_stamp(prompts_dir),
        )
        if res.flow is None:
            log.warning("designer.tester_draft_invalid", flow=flow, errors=len(res.errors))
        return res.flow

    return draft_for


def wire_test_callers(app: web.Application) -> None:
    """The runtime asks the designer's drafts for its test callers."""
    runtime = app.get(FLOWS)
    if isinstance(runtime, FlowRuntime) and runtime.deps.draft_for is None:
        cfg = app[CONFIG]
        flows_dir, prompts_dir = cfg.path(cfg.paths.flows), cfg.path(cfg.paths.prompts)
        runtime.deps.draft_for = draft_lookup(app[SHARED_DB], flows_dir, prompts_dir)

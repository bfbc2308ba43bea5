"""The designer's actions that reach beyond one flow's text: "Call me" (a real call from one
of the account's numbers to the person's phone, running the draft, placed and priced like any
POST /v1/calls) and a new flow file."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from flexvoice.api import flowfiles
from flexvoice.api import flows as flow_api
from flexvoice.api.designer_flows import _state
from flexvoice.api.designer_session import SESSION, designer_op
from flexvoice.api.designer_session import json_response as _json
from flexvoice.api.framework import parse_json_body, read_body
from flexvoice.api.models import E164
from flexvoice.api.originate import originate
from flexvoice.api.problems import ProblemError
from flexvoice.appkeys import NUMBERS
from flexvoice.flows.validate import validate_text
from flexvoice.logs import get_logger
from flexvoice.numbers import FLOW_NAME_RE
from flexvoice.offloop import parse_off_loop

log = get_logger(__name__)
routes = web.RouteTableDef()

CALL_ME_RING_S = 30.0


class CallMe(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    to: E164 = Field(description="your phone")
    from_: E164 | None = Field(None, alias="from", description="one of the account's numbers")


class NewFlow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=63)
    description: str = Field("", max_length=200)


@routes.get("/designer/api/numbers")
@designer_op()
async def account_numbers(request: web.Request) -> web.StreamResponse:
    """The account's numbers: the caller IDs "Call me" can ring from."""
    account = request[SESSION].user.account
    numbers = request.config_dict[NUMBERS].list(account)
    return _json({"numbers": [n.e164 for n in numbers]})


@routes.post("/designer/api/flows/{name}/call")
@designer_op(edit=True, flow_lock=False)
async def call_me(request: web.Request) -> web.StreamResponse:
    """Ring the person's phone and run the working version (the draft when there is one)."""
    body = parse_json_body(await read_body(request), CallMe)
    account = request[SESSION].user.account
    entry = await flowfiles.find_flow(request)
    current = await _state(request, entry)
    _, prompts_dir = flowfiles.flow_dirs(request)
    res = await parse_off_loop(
        validate_text, current["text"], f"flows/{entry.path.name}", prompts_dir
    )
    if res.flow is None:
        raise flow_api.invalid_flow(res, "text", "the draft")
    from_ = body.from_
    if from_ is None:
        numbers = request.config_dict[NUMBERS].list(account)
        if not numbers:
            raise ProblemError(
                "invalid-field",
                f"account '{account}' has no number to call you from; ask your operator to add one",
                field="from",
            )
        from_ = numbers[0].e164
    call = await originate(
        request.config_dict,
        account,
        from_=from_,
        to=body.to,
        flow=None,
        document=res.flow,
        document_source=f"designer draft of {entry.name} ({current['etag'][:12]})",
        ring_timeout=CALL_ME_RING_S,
        variables={},
    )
    log.info("designer.call_me", flow=entry.name, call=call.id, by=request[SESSION].user.email)
    return _json({"call": call.id, "from": from_, "to": body.to, "status": call.status}, 201)


def _skeleton(name: str, description: str) -> str:
    words = description.replace('"', "'") or f"The {name} flow"
    return (
        f"# Made in the designer: answer, greet, hang up. Change it on the canvas.\n"
        f"flow: {name}\n"
        f'description: "{words}"\n'
        f"start: welcome\n"
        f"steps:\n"
        f"  welcome:\n"
        f'    play: {{say: "Hello, thank you for calling.", then: goodbye}}\n'
        f"  goodbye:\n"
        f"    hangup: {{}}\n"
    )


@routes.post("/designer/api/flows")
@designer_op(edit=True)
async def new_flow(request: web.Request) -> web.StreamResponse:
    body = parse_json_body(await read_body(request), NewFlow)
    name = body.name.strip()
    if not FLOW_NAME_RE.match(name):
        raise ProblemError(
            "invalid-field",
            f"'{name}' is not a flow name; use lower-case letters, digits, '_' and '-', "
            "e.g. holiday-line",
            field="name",
        )
    flows_dir, prompts_dir = flowfiles.flow_dirs(request)
    entries = await flowfiles.entries(flows_dir, prompts_dir)
    path = flows_dir / f"{name}.yaml"
    if any(e.name == name for e in entries) or path.exists():
        raise ProblemError(
            "conflict", f"a flow '{name}' exists already; open it or choose another name"
        )
    text = _skeleton(name, body.description)
    res = await parse_off_loop(validate_text, text, f"flows/{path.name}", prompts_dir)
    flowfiles.write_atomically(path, text.encode())
    runtime = flowfiles.runtime_of(request)
    if runtime is not None:
        runtime.load_file(path, res)
    log.info("designer.flow_created", flow=name, by=request[SESSION].user.email)
    entry = next(e for e in await flowfiles.entries(flows_dir, prompts_dir)
                 if e.name == name)  # fmt: skip
    state: dict[str, Any] = await _state(request, entry)
    return _json(state, 201, etag=state["etag"])

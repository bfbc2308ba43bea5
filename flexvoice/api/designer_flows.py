"""The page's API for flows: read one (its draft, problems put on steps and fields, the diff
of what publishing changes), edit it, publish, revisions, simulate."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from flexvoice.api import designer_notes, flowfiles, flowsim
from flexvoice.api import flows as flow_api
from flexvoice.api.designer_session import SESSION, designer_op, json_body
from flexvoice.api.designer_session import json_response as _json
from flexvoice.api.framework import MAX_BODY_BYTES, parse_json_body, read_body
from flexvoice.api.problems import ProblemError
from flexvoice.appkeys import SHARED_DB
from flexvoice.errors import UserError
from flexvoice.flows import designview, revisions, steprenames, yamledit
from flexvoice.flows.schema import flow_schema
from flexvoice.flows.validate import validate_text
from flexvoice.logs import get_logger
from flexvoice.offloop import check_off_loop, parse_off_loop
from flexvoice.storage.engine import Connection

log = get_logger(__name__)
routes = web.RouteTableDef()


@routes.get("/designer/api/me")
@designer_op()
async def me(request: web.Request) -> web.StreamResponse:
    session = request[SESSION]
    user = session.user
    return _json(
        {
            "email": user.email,
            "account": user.account,
            "role": user.role,
            "can_edit": user.can_edit,
            "can_read_statistics": user.can_read_statistics,
            "csrf": session.csrf,
        }
    )


@routes.get("/designer/api/schema")
@designer_op()
async def schema(request: web.Request) -> web.StreamResponse:
    return _json(flow_schema())


@routes.get("/designer/api/flows")
@designer_op()
async def list_flows(request: web.Request) -> web.StreamResponse:
    flows_dir, prompts_dir = flowfiles.flow_dirs(request)
    entries = await flowfiles.entries(flows_dir, prompts_dir)
    pending = revisions.drafts(request.config_dict[SHARED_DB])
    out = []
    for e in entries:
        draft = pending.get(e.name)
        out.append(
            {
                "name": e.name,
                "file": e.path.name,
                "description": e.validation.flow.description if e.validation.flow else "",
                "valid": e.validation.flow is not None,
                "errors": len(e.validation.errors),
                "draft": None
                if draft is None
                else {"author": draft.author, "at": draft.updated_at},
            }
        )
    return _json({"flows": out})


def _shown(
    entry: flowfiles.Entry, text: str, draft: revisions.Draft | None, view: dict[str, Any]
) -> dict[str, Any]:
    return {
        "name": entry.name,
        "file": entry.path.name,
        "text": text,
        "etag": revisions.etag(text),
        "published_etag": revisions.etag(entry.text),
        "draft": None if draft is None else {"author": draft.author, "at": draft.updated_at},
        **view,
    }


async def _state(request: web.Request, entry: flowfiles.Entry) -> dict[str, Any]:
    """What the page shows for one flow: the working text (the draft, else the file), its
    ETag, problems, and the diff of what publishing would change (one parse, off the loop)."""
    conn = request.config_dict[SHARED_DB]
    _, prompts_dir = flowfiles.flow_dirs(request)
    draft = revisions.get_draft(conn, entry.name)
    text = draft.text if draft is not None else entry.text
    view = await check_off_loop(
        len(text) + len(entry.text),
        designview.flow_view,
        text,
        entry.text,
        entry.path.name,
        prompts_dir,
        flowfiles.prompts_stamp(prompts_dir),
    )
    return _shown(entry, text, draft, view)


def _if_match(request: web.Request) -> str:
    wanted = request.headers.get("If-Match", "").strip().removeprefix("W/").strip('"')
    if not wanted:
        raise ProblemError(
            "invalid-field",
            "send If-Match with the ETag of the version you edited",
            field="If-Match",
        )
    return wanted


def _conflict(
    request: web.Request, current: dict[str, Any], yours: str | None, base_needed: bool = False
) -> ProblemError:
    who = current["draft"]["author"] if current["draft"] else "a publication"
    extra: dict[str, Any] = {"theirs": current, "yours": yours}
    if base_needed:
        extra["base_needed"] = True  # send the edit again with "base": the text it was made on
    return ProblemError(
        "precondition-failed",
        f"someone else changed this flow while you edited it (last change by {who}); both "
        "versions are shown: keep theirs, or apply your change again on top of it",
        field="If-Match",
        extra=extra,
    )


@routes.get("/designer/api/flows/{name}")
@designer_op()
async def get_flow(request: web.Request) -> web.StreamResponse:
    entry = await flowfiles.find_flow(request)
    state = await _state(request, entry)
    # A structural edit (add, delete, rename, a new outcome) needs ruamel's tree of the text:
    # read it now, in a parsing thread, rather than when the person makes the first one.
    task = asyncio.create_task(parse_off_loop(yamledit.warm, state["text"]))
    _WARMING.add(task)
    task.add_done_callback(_WARMING.discard)
    return _json(state, etag=state["etag"])


_WARMING: set[asyncio.Task[None]] = set()


@routes.post("/designer/api/flows/{name}/edit")
@designer_op(edit=True)
async def edit_flow(request: web.Request) -> web.StreamResponse:
    """Apply the page's edits to the working text and keep it as the draft (even with errors:
    the page warns, it does not block)."""
    data = await json_body(request)
    ops = data.get("ops")
    if not isinstance(ops, list) or not ops or not all(isinstance(o, dict) for o in ops):
        raise ProblemError("invalid-body", "send {'ops': [...]}, at least one edit", field="ops")
    wanted = _if_match(request)
    entry = await flowfiles.find_flow(request)
    conn = request.config_dict[SHARED_DB]
    # designer_op holds the node's flow write lock: two edits cannot interleave.
    draft = revisions.get_draft(conn, entry.name)
    working = draft.text if draft is not None else entry.text
    if revisions.etag(working) != wanted:
        current = await _state(request, entry)
        # The text the edit was made on is known by its ETag (a text this node answered
        # lately, or a publication); the page sends it only when asked (`base_needed`).
        base = data.get("base")
        if not isinstance(base, str) or revisions.etag(base) != wanted:
            base = designview.recalled(wanted) or revisions.published_text(conn, entry.name, wanted)
        if base is None:
            raise _conflict(request, current, None, base_needed=True)
        try:
            yours = await check_off_loop(len(base), yamledit.apply, base, ops)
        except UserError:
            yours = None
        raise _conflict(request, current, yours)
    _, prompts_dir = flowfiles.flow_dirs(request)
    try:
        # The edit and the check of its result in one trip to a checking thread.
        done = await check_off_loop(
            len(working) + len(entry.text),
            designview.edited,
            working,
            ops,
            entry.text,
            entry.path.name,
            prompts_dir,
            flowfiles.prompts_stamp(prompts_dir),
            changes=data.get("answer") == "changes",
        )
    except UserError as exc:
        raise ProblemError("invalid-field", str(exc), field="ops") from None
    text = done.text
    if len(text.encode()) > MAX_BODY_BYTES:
        raise ProblemError("body-too-large", "the flow would be larger than 1 MiB; split it")
    author = request[SESSION].user.email
    if text == entry.text:
        revisions.drop_draft(conn, entry.name)  # back to what is published: no draft
        draft = None
    else:
        draft = revisions.save_draft(conn, entry.name, text, author)
    renames = [(str(op["step"]), str(op["to"])) for op in ops if op.get("op") == "rename_step"]
    state = _shown(entry, text, draft, done.view)
    if "text_patch" in state:
        del state["text"]  # the page holds the text before: the patch makes it this one
    before = working if done.before is None else done.before
    state.update(await _notes_follow(request, entry, before, done.steps, renames))
    return _json(state, etag=state["etag"])


def _known_text(conn: Connection, entry: flowfiles.Entry, etag: str) -> str | None:
    """A text of this flow by its ETag: the file, one this node checked lately, or one
    published before (None: the page is asked for it)."""
    if revisions.etag(entry.text) == etag:
        return entry.text
    return designview.recalled(etag) or revisions.published_text(conn, entry.name, etag)


async def _notes_follow(
    request: web.Request,
    entry: flowfiles.Entry,
    before: str | list[dict[str, Any]],
    after: list[dict[str, Any]],
    renames: list[tuple[str, str]],
) -> dict[str, Any]:
    """Sticky notes beside steps that this change renamed move with them, and the answer
    carries them (`notes`). Renames are the edit's rename_step ops, and those told from the
    steps (steprenames) when a note's step is gone: an undo, a discarded draft or a restored
    revision is a new text, not a rename. The old text's steps (`before`, or its text) are
    read only then (the last answer's check is cached, so usually no parse)."""
    names = {s["name"] for s in after}
    beside = {n["step"] for n in designer_notes.notes_of(entry.path) if n["step"]}
    for old, new in renames:
        beside = {new if step == old else step for step in beside}
    if not beside <= names:
        if not isinstance(before, str):
            steps = before
        else:
            _, prompts_dir = flowfiles.flow_dirs(request)
            _, steps, _ = await check_off_loop(
                len(before),
                designview.checked,
                before,
                f"flows/{entry.path.name}",
                prompts_dir,
                flowfiles.prompts_stamp(prompts_dir),
            )
        renames = renames + sorted(steprenames.renamed(steps, after).items())
    moved = designer_notes.follow_renames(entry.path, renames) if renames else None
    return {} if moved is None else {"notes": moved}


@routes.post("/designer/api/flows/{name}/discard")
@designer_op(edit=True)
async def discard_draft(request: web.Request) -> web.StreamResponse:
    wanted = _if_match(request)
    entry = await flowfiles.find_flow(request)
    current = await _state(request, entry)
    if current["etag"] != wanted:
        raise _conflict(request, current, None)
    revisions.drop_draft(request.config_dict[SHARED_DB], entry.name)
    state = await _state(request, entry)
    state.update(await _notes_follow(request, entry, current["text"], state["steps"], []))
    return _json(state, etag=state["etag"])


async def _publish(
    request: web.Request, entry: flowfiles.Entry, text: str, message: str
) -> revisions.Revision:
    """Validate, write atomically, reload, record the revision. Errors refuse it (422)."""
    _, prompts_dir = flowfiles.flow_dirs(request)
    res = await parse_off_loop(validate_text, text, f"flows/{entry.path.name}", prompts_dir)
    if res.flow is None:
        raise flow_api.invalid_flow(res, "text", "the draft")
    if res.flow.name != entry.name:
        raise ProblemError(
            "invalid-flow",
            f"flow: the draft says '{res.flow.name}' but this is flow '{entry.name}'; put the "
            "name back (renaming a flow is done on the node)",
            field="flow",
        )
    conn = request.config_dict[SHARED_DB]
    author = request[SESSION].user.email
    if not revisions.revisions(conn, entry.name):
        # The history starts with the file as it was, so the first publication can be undone.
        revisions.record(conn, entry.name, entry.text, "file", "as found in the flows folder")
    flowfiles.write_atomically(entry.path, text.encode())
    runtime = flowfiles.runtime_of(request)
    if runtime is not None:
        runtime.load_file(entry.path, res)  # validated above: not parsed again on the loop
    revision = revisions.record(conn, entry.name, text, author, message)
    revisions.drop_draft(conn, entry.name)
    log.info("designer.published", flow=entry.name, revision=revision.id, author=author)
    return revision


def _message(data: dict[str, Any], default: str) -> str:
    message = data.get("message", default)
    if not isinstance(message, str) or len(message) > 500:
        raise ProblemError("invalid-field", "message: up to 500 characters", field="message")
    return message.strip() or default


@routes.post("/designer/api/flows/{name}/publish")
@designer_op(edit=True)
async def publish(request: web.Request) -> web.StreamResponse:
    data = await json_body(request)
    message = _message(data, "published from the designer")
    wanted = _if_match(request)
    entry = await flowfiles.find_flow(request)
    current = await _state(request, entry)
    if current["etag"] != wanted:
        raise _conflict(request, current, None)
    if current["draft"] is None:
        raise ProblemError("conflict", "nothing to publish: the draft is the published flow")
    revision = await _publish(request, entry, current["text"], message)
    entry = await flowfiles.find_flow(request)
    state = await _state(request, entry)
    state["revision"] = revision.summary()
    return _json(state, etag=state["etag"])


@routes.get("/designer/api/flows/{name}/revisions")
@designer_op()
async def list_revisions(request: web.Request) -> web.StreamResponse:
    entry = await flowfiles.find_flow(request)
    rows = revisions.revisions(request.config_dict[SHARED_DB], entry.name)
    return _json({"revisions": [r.summary() for r in rows]})


def _revision(request: web.Request, entry: flowfiles.Entry) -> revisions.Revision:
    try:
        rev_id = int(request.match_info["rev"])
    except ValueError:
        rev_id = -1
    rev = revisions.get_revision(request.config_dict[SHARED_DB], entry.name, rev_id)
    if rev is None:
        raise ProblemError(
            "not-found", f"flow '{entry.name}' has no revision {request.match_info['rev']}"
        )
    return rev


@routes.get("/designer/api/flows/{name}/revisions/{rev}")
@designer_op()
async def show_revision(request: web.Request) -> web.StreamResponse:
    entry = await flowfiles.find_flow(request)
    rev = _revision(request, entry)
    view = await parse_off_loop(designview.revision_view, rev.text, entry.text, rev.id)
    return _json({**rev.summary(), "text": rev.text, **view})


@routes.post("/designer/api/flows/{name}/revisions/{rev}/restore")
@designer_op(edit=True)
async def restore_revision(request: web.Request) -> web.StreamResponse:
    """Publish an old revision's text again, as a new revision (history is kept)."""
    data = await json_body(request)
    wanted = _if_match(request)
    entry = await flowfiles.find_flow(request)
    rev = _revision(request, entry)
    current = await _state(request, entry)
    if current["etag"] != wanted:
        raise _conflict(request, current, None)
    message = _message(data, f"restored revision {rev.id}")
    revision = await _publish(request, entry, rev.text, message)
    state = await _state(request, await flowfiles.find_flow(request))
    state["revision"] = revision.summary()
    state.update(await _notes_follow(request, entry, current["text"], state["steps"], []))
    return _json(state, etag=state["etag"])


@routes.post("/designer/api/flows/{name}/simulate")
@designer_op()
async def simulate(request: web.Request) -> web.StreamResponse:
    """The simulator over the working version (the draft when there is one)."""
    body = parse_json_body(await read_body(request), flowsim.SimulateRequest)
    entry = await flowfiles.find_flow(request)
    _, prompts_dir = flowfiles.flow_dirs(request)
    current = await _state(request, entry)
    res = await parse_off_loop(
        validate_text, current["text"], f"flows/{entry.path.name}", prompts_dir
    )
    if res.flow is None:
        raise flow_api.invalid_flow(res, "text", "the draft")
    result = await flowsim.simulate(res.flow, prompts_dir, body)
    return _json(result.model_dump())

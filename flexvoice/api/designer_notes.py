"""Sticky notes on a flow's canvas. They are the team's words about the flow, not part of it:
kept in a layout file beside the flow (flows/<file>.layout.json), never in the flow's YAML or
its schema, so the runtime, `flows validate` and the revisions never see them. Saved at once
(shared by everyone who opens the flow), not drafted or published."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from flexvoice.api import flowfiles
from flexvoice.api.designer_session import designer_op
from flexvoice.api.designer_session import json_response as _json
from flexvoice.api.framework import parse_json_body, read_body
from flexvoice.flows.base import STEP_NAME_RE
from flexvoice.logs import get_logger

log = get_logger(__name__)
routes = web.RouteTableDef()


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")
    text: str = Field(max_length=2000)
    step: str | None = Field(None, max_length=100, description="the step it sits beside")
    x: float = Field(0, ge=-1e6, le=1e6)
    y: float = Field(0, ge=-1e6, le=1e6)


class Notes(BaseModel):
    model_config = ConfigDict(extra="forbid")
    notes: list[Note] = Field(max_length=200)


def layout_file(flow_file: Path) -> Path:
    return flow_file.with_name(f"{flow_file.stem}.layout.json")


def _read(path: Path) -> list[dict[str, Any]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return [n.model_dump() for n in Notes.model_validate(doc).notes]
    except (OSError, ValueError):
        return []  # no file yet, or one a person broke by hand: no notes, never an error


def notes_of(flow_file: Path) -> list[dict[str, Any]]:
    return _read(layout_file(flow_file))


def follow_renames(flow_file: Path, renames: list[tuple[str, str]]) -> list[dict[str, Any]] | None:
    """A note beside a step stays beside it when the step is renamed (in the order given).
    The notes when some moved (the edit's answer carries them: the page shows them moved in
    the same frame as the renamed step, with no second request), else None."""
    path = layout_file(flow_file)
    notes = _read(path)
    moved = False
    for old, new in renames:
        for note in notes:
            if note["step"] == old:
                note["step"], moved = new, True
    if moved:
        data = json.dumps({"notes": notes}, indent=2, ensure_ascii=False) + "\n"
        flowfiles.write_atomically(path, data.encode())
        return notes
    return None


@routes.get("/designer/api/flows/{name}/notes")
@designer_op()
async def get_notes(request: web.Request) -> web.StreamResponse:
    entry = await flowfiles.find_flow(request)
    return _json({"notes": _read(layout_file(entry.path))})


@routes.put("/designer/api/flows/{name}/notes")
@designer_op(edit=True)
async def put_notes(request: web.Request) -> web.StreamResponse:
    body = parse_json_body(await read_body(request), Notes)
    for note in body.notes:
        if note.step is not None and not STEP_NAME_RE.match(note.step):
            note.step = None  # a note beside a step that cannot exist floats free
    entry = await flowfiles.find_flow(request)
    doc = {"notes": [n.model_dump() for n in body.notes]}
    data = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    flowfiles.write_atomically(layout_file(entry.path), data.encode())
    return _json(doc)

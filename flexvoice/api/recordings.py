"""/v1/recordings: metadata, the WAV audio (with range requests) and deletion."""

from __future__ import annotations

import contextlib
from pathlib import Path

from aiohttp import web

from flexvoice.api.framework import PRINCIPAL, Resource, request_query
from flexvoice.api.models import RecordingList, RecordingListQuery, RecordingResource
from flexvoice.api.problems import ProblemError
from flexvoice.appkeys import CALLS, CONFIG
from flexvoice.calls import Recording

resource = Resource("recordings", "Call recordings and voicemails")

READ = frozenset({"developer"})
DELETE = frozenset({"developer"})


def _find(request: web.Request) -> Recording:
    rec_id = request.match_info["recording_id"]
    rec = request.config_dict[CALLS].recording(rec_id, request[PRINCIPAL].account)
    if rec is None:
        raise ProblemError(
            "not-found", f"no recording '{rec_id}' in this account", field="recording_id"
        )
    return rec


@resource.op(
    "GET",
    "/recordings",
    summary="List recordings",
    roles=READ,
    query=RecordingListQuery,
    response=RecordingList,
    errors=(400, 401, 403, 429),
)
async def list_recordings(request: web.Request) -> web.Response:
    q = request_query(request, RecordingListQuery)
    recs = request.config_dict[CALLS].recordings(request[PRINCIPAL].account, q.call_id)
    doc = RecordingList.model_validate({"recordings": [r.as_dict() for r in recs]})
    return web.json_response(doc.model_dump())


@resource.op(
    "GET",
    "/recordings/{recording_id}.wav",
    summary="Download a recording's audio",
    roles=READ,
    produces="audio/wav",
    errors=(401, 403, 404, 429),
)
async def recording_audio(request: web.Request) -> web.StreamResponse:
    """WAV audio; `Range: bytes=...` requests are answered with 206."""
    rec = _find(request)
    path = _resolve(request, rec)
    if not path.is_file():
        raise ProblemError(
            "not-found",
            f"the audio of recording {rec.id} is no longer on disk",
            field="recording_id",
        )
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


@resource.op(
    "GET",
    "/recordings/{recording_id}",
    summary="Read a recording's metadata",
    roles=READ,
    response=RecordingResource,
    errors=(401, 403, 404, 429),
)
async def get_recording(request: web.Request) -> web.Response:
    doc = RecordingResource.model_validate(_find(request).as_dict())
    return web.json_response(doc.model_dump())


@resource.op(
    "DELETE",
    "/recordings/{recording_id}",
    summary="Delete a recording and its audio",
    roles=DELETE,
    status=204,
    errors=(401, 403, 404, 429),
)
async def delete_recording(request: web.Request) -> web.Response:
    rec = _find(request)
    path = _resolve(request, rec)
    request.config_dict[CALLS].delete_recording(rec.id)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return web.Response(status=204)


def _resolve(request: web.Request, rec: Recording) -> Path:
    cfg = request.config_dict[CONFIG]
    path = Path(rec.path)
    return path if path.is_absolute() else cfg.path(cfg.storage.recordings) / path

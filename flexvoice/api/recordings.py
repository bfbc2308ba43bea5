"""/v1/recordings: metadata, the WAV audio (with range requests) and deletion; and the
recordings component of `flexvoice serve` (the service, crash repair at start, retention)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from flexvoice.api.framework import Resource, request_query
from flexvoice.api.models import RecordingList, RecordingListQuery, RecordingResource
from flexvoice.api.problems import ProblemError
from flexvoice.api.resources import account_of, answer, node_part, owned
from flexvoice.appkeys import DIALER, POOL, RECORDINGS
from flexvoice.calls import CallRecord
from flexvoice.recordings.service import RecordableLeg, RecordingConflict, RecordingService
from flexvoice.recordings.store import RecordingRow

resource = Resource("recordings", "Call recordings and voicemails")

READ = frozenset({"developer"})
DELETE = frozenset({"developer"})


def _service(where: web.Request | Mapping[Any, Any]) -> RecordingService:
    return node_part(where, RECORDINGS, "recordings are not available on this node")


def _find(request: web.Request) -> RecordingRow:
    return owned(request, "recording_id", "recording", _service(request).store.get)


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
    """Newest first, deleted ones included (their status says so); filter by call_id."""
    q = request_query(request, RecordingListQuery)
    rows = _service(request).store.list(account_of(request), call_id=q.call_id, limit=q.limit)
    return answer(RecordingList, {"recordings": [r.resource() for r in rows]})


@resource.op(
    "GET",
    "/recordings/{recording_id}.wav",
    summary="Download a recording's audio",
    roles=READ,
    produces="audio/wav",
    errors=(401, 403, 404, 409, 429),
)
async def recording_audio(request: web.Request) -> web.StreamResponse:
    """WAV audio; `Range: bytes=...` requests are answered with 206."""
    rec = _find(request)
    if rec.open:
        raise ProblemError(
            "conflict",
            f"recording {rec.id} is still {rec.status}; its audio can be downloaded once it "
            "is completed",
            field="recording_id",
        )
    path = _service(request).path_of(rec)
    if rec.status == "deleted" or not path.is_file():
        why = rec.note or "it was deleted"
        raise ProblemError(
            "not-found",
            f"the audio of recording {rec.id} is no longer on disk ({why})",
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
    return answer(RecordingResource, _find(request).resource())


@resource.op(
    "DELETE",
    "/recordings/{recording_id}",
    summary="Delete a recording's audio",
    roles=DELETE,
    status=204,
    errors=(401, 403, 404, 409, 429),
)
async def delete_recording(request: web.Request) -> web.Response:
    """The audio is deleted at once; the recording stays listed with status `deleted` (its
    usage was billed). A recording still running must be stopped first."""
    rec = _find(request)
    try:
        _service(request).delete(rec)
    except RecordingConflict as exc:
        raise ProblemError("conflict", str(exc), field="recording_id") from None
    return web.Response(status=204)


def leg_of(app: Mapping[Any, Any], call_id: str) -> RecordableLeg | None:
    """The live leg of a call this node holds: one it placed, or one on its pool."""
    live = app[DIALER].live.get(call_id)
    if live is not None and live.leg is not None:
        found: RecordableLeg = live.leg
        return found
    pool = app.get(POOL)
    if pool is not None:
        for worker in pool.workers:
            for leg in worker.legs.values():
                if leg.call_id == call_id and not leg.ended:
                    held: RecordableLeg = leg
                    return held
    return None


async def control(app: Mapping[Any, Any], call: CallRecord, action: str, channels: int = 1) -> None:
    """POST /v1/calls/{id} {"recording": ...}: start, pause, resume or stop the call's
    whole-call recording; a ProblemError says why not."""
    service = _service(app)
    if call.status != "in-progress":
        raise ProblemError(
            "conflict",
            f"call {call.id} is {call.status}; only an answered call can be recorded",
            field="recording",
        )
    try:
        if action == "start":
            leg = leg_of(app, call.id)
            if leg is None:
                raise ProblemError(
                    "conflict",
                    f"call {call.id} is not held by this node; record it on the node that has it",
                    field="recording",
                )
            await service.start(leg, call.account, channels=channels)
        elif action == "pause":
            await service.pause(call.id)
        elif action == "resume":
            await service.resume(call.id)
        else:
            await service.stop(call.id)
    except RecordingConflict as exc:
        raise ProblemError("conflict", str(exc), field="recording") from None

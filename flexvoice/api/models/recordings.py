"""Recordings: one recording (of a call or a conference), lists of them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flexvoice.api.models.base import (
    Query,
    Resource,
)


class RecordingResource(Resource):
    id: str
    account: str
    call_id: str
    kind: Literal["message", "call"] = Field(
        description="message: a voicemail (record step); call: the whole call, both parties"
    )
    status: Literal["in-progress", "paused", "completed", "failed", "deleted"]
    started_at: str
    ended_at: str | None
    duration_seconds: float | None = Field(description="seconds of audio in the file")
    size_bytes: int | None
    channels: int
    sha256: str | None = Field(description="SHA-256 of the WAV file, to check a download")
    billable_seconds: int | None = Field(
        description="seconds billed (every started minute under the usual tariff)"
    )
    price_eur: str | None = Field(description="price in EUR as a decimal string")
    note: str | None = Field(
        description="what happened out of the ordinary (a header repaired after a crash, why "
        "it failed, why it was deleted)"
    )
    created_at: str
    deleted_at: str | None
    url: str = Field(description="the audio (WAV, supports range requests)")


class RecordingList(Resource):
    recordings: list[RecordingResource]


class RecordingListQuery(Query):
    call_id: str | None = Field(None, max_length=64)
    limit: int = Field(100, ge=1, le=1000)

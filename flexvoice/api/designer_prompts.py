"""The designer's prompts: the node's recorded messages listed (with a player on the page), and
a recording uploaded as a WAV file, converted with sox to what calls play (8 kHz mono 16-bit,
the format of `flexvoice prompts build`) and put where flows find it:
ivr_prompts/<language>/<name>.wav, or ivr_prompts/<name>.wav for every language."""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
import wave
from pathlib import Path
from typing import Any

from aiohttp import web

from flexvoice.api import flowfiles
from flexvoice.api.designer_session import SESSION, designer_op
from flexvoice.api.designer_session import json_response as _json
from flexvoice.api.problems import ProblemError
from flexvoice.flows.prompts import SOX_FORMAT
from flexvoice.logs import get_logger

log = get_logger(__name__)
routes = web.RouteTableDef()

MAX_UPLOAD_BYTES = 16 * 1024 * 1024  # a few minutes of CD-quality stereo
MAX_SECONDS = 600
SOX_TIMEOUT_S = 60
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
LANGUAGE_RE = re.compile(r"^[a-z]{2}$")
EVERY_LANGUAGE = "all"  # in URLs: the language-neutral ivr_prompts/<name>.wav


def _seconds(path: Path) -> float | None:
    try:
        with wave.open(str(path), "rb") as w:
            return round(w.getnframes() / w.getframerate(), 1)
    except (wave.Error, EOFError, OSError, ZeroDivisionError):
        return None


def _listing(prompts_dir: Path) -> dict[str, Any]:
    out = []
    languages = []
    folders = [(EVERY_LANGUAGE, prompts_dir)]
    if prompts_dir.is_dir():
        for sub in sorted(prompts_dir.iterdir()):
            if sub.is_dir() and LANGUAGE_RE.match(sub.name):
                languages.append(sub.name)
                folders.append((sub.name, sub))
    for language, folder in folders:
        for path in sorted(folder.glob("*.wav")) if folder.is_dir() else []:
            out.append(
                {
                    "name": path.stem,
                    "language": language,
                    "bytes": path.stat().st_size,
                    "seconds": _seconds(path),
                }
            )
    return {"prompts": out, "languages": languages}


def _where(request: web.Request) -> Path:
    language, name = request.match_info["language"], request.match_info["name"]
    name = name.removesuffix(".wav")
    if not NAME_RE.match(name):
        raise ProblemError(
            "invalid-field",
            f"'{name}' is not a prompt name; use lower-case letters, digits, '_' and '-' "
            "(up to 64), e.g. opening_hours",
            field="name",
        )
    if language != EVERY_LANGUAGE and not LANGUAGE_RE.match(language):
        raise ProblemError(
            "invalid-field",
            f"'{language}' is not a language; give a two-letter code such as nl, fr or en, "
            f"or '{EVERY_LANGUAGE}' for a prompt played in every language",
            field="language",
        )
    _, prompts_dir = flowfiles.flow_dirs(request)
    folder = prompts_dir if language == EVERY_LANGUAGE else prompts_dir / language
    return folder / f"{name}.wav"


@routes.get("/designer/api/prompts")
@designer_op()
async def list_prompts(request: web.Request) -> web.StreamResponse:
    _, prompts_dir = flowfiles.flow_dirs(request)
    return _json(await asyncio.to_thread(_listing, prompts_dir))


@routes.get("/designer/api/prompts/{language}/{name}")
@designer_op()
async def play_prompt(request: web.Request) -> web.StreamResponse:
    path = _where(request)
    if not path.is_file():
        raise ProblemError("not-found", f"no prompt {path.stem} for this language")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


async def _read_upload(request: web.Request) -> bytes:
    # Past the node's 1 MiB body limit: read here, counting, and stop at the upload limit.
    if request.content_length is not None and request.content_length > MAX_UPLOAD_BYTES:
        raise _too_large()
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_UPLOAD_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large() -> ProblemError:
    return ProblemError(
        "audio-too-large",
        f"the recording is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB; shorten it or "
        "save it as mono (prompts are played at 8 kHz mono, so nothing is lost)",
    )


async def _convert(data: bytes, target: Path) -> float:
    """sox: any WAV it reads -> 8 kHz mono 16-bit, written atomically; the seconds."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ProblemError(
            "invalid-audio",
            "this is not a WAV file (it does not start with RIFF...WAVE); export the "
            "recording as WAV and upload that",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="flexvoice-upload-") as tmp:
        source, out = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        source.write_bytes(data)
        proc = await asyncio.create_subprocess_exec(
            "sox", "-D", str(source), *SOX_FORMAT, str(out),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            _, err = await asyncio.wait_for(proc.communicate(), SOX_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise ProblemError(
                "invalid-audio", "converting the recording took too long; upload a shorter one"
            ) from None
        if proc.returncode != 0:
            why = err.decode(errors="replace").strip().splitlines()
            detail = why[-1].removeprefix("sox FAIL formats: ") if why else "unreadable"
            raise ProblemError(
                "invalid-audio",
                f"sox could not read the recording as audio ({detail[:200]}); export it "
                "again as a plain PCM WAV file",
            )
        seconds = _seconds(out)
        if seconds is None or seconds <= 0:
            raise ProblemError("invalid-audio", "the recording holds no sound; record it again")
        if seconds > MAX_SECONDS:
            raise ProblemError(
                "invalid-audio",
                f"the recording lasts {seconds:.0f} s; a prompt may last up to "
                f"{MAX_SECONDS // 60} minutes",
            )
        tmp_target = target.with_name(f".{target.name}.upload")
        tmp_target.write_bytes(out.read_bytes())
        tmp_target.replace(target)  # a call playing the old one never reads half a file
        return seconds


@routes.put("/designer/api/prompts/{language}/{name}")
@designer_op(edit=True, flow_lock=False)  # an upload does not touch flow files
async def upload_prompt(request: web.Request) -> web.StreamResponse:
    target = _where(request)
    data = await _read_upload(request)
    seconds = await _convert(data, target)
    user = request[SESSION].user.email
    log.info("designer.prompt_uploaded", prompt=str(target.name), by=user, seconds=seconds)
    language = request.match_info["language"]
    return _json(
        {"name": target.stem, "language": language, "bytes": target.stat().st_size,
         "seconds": seconds},
        status=201,
    )  # fmt: skip

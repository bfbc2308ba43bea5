"""The node's flows folder as the API reads and writes it: every flow file read and validated
(kept until a file changes), a flow found by name, the file a new flow goes to, atomic writes
and the one lock under which flows are replaced. No HTTP resource here: /v1/flows
(flexvoice.api.flows) and the designer's pages use it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from flexvoice.api.problems import ProblemError
from flexvoice.appkeys import CONFIG, FLOWS
from flexvoice.errors import Problem
from flexvoice.flows.runtime import FLOW_SUFFIXES, FlowRuntime
from flexvoice.flows.validate import Validation, validate_text
from flexvoice.numbers import FLOW_NAME_RE
from flexvoice.offloop import parse_off_loop

DECLARED = re.compile(r"^flow:\s*['\"]?([a-z0-9][a-z0-9_\-]*)['\"]?\s*(#.*)?$", re.MULTILINE)


@dataclass
class Entry:
    path: Path
    name: str
    text: str
    validation: Validation


def flow_dirs(request: web.Request) -> tuple[Path, Path]:
    cfg = request.config_dict[CONFIG]
    return cfg.path(cfg.paths.flows), cfg.path(cfg.paths.prompts)


def runtime_of(request: web.Request) -> FlowRuntime | None:
    runtime: Any = request.config_dict.get(FLOWS)
    return runtime if isinstance(runtime, FlowRuntime) else None


def _read(path: Path, prompts_dir: Path) -> Entry:
    label = f"flows/{path.name}"  # the folder's place on the node is not the client's business
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problem = Problem(label, 0, 0, f"cannot read the file: {exc}")
        return Entry(path, path.stem, "", Validation(label, None, [problem]))
    res = validated(text, label, prompts_dir, prompts_stamp(prompts_dir))
    if res.flow is not None:
        name = res.flow.name
    else:  # an invalid file still says which flow it means to be, most of the time
        declared = DECLARED.search(text)
        name = declared.group(1) if declared else path.stem
    return Entry(path, name, text, res)


def prompts_stamp(prompts_dir: Path) -> tuple[int, ...]:
    """Changes when a prompt file is added or removed (the language folders' mtimes): part of
    the cache key of a validation, which checks that prompt files exist."""
    try:
        return tuple(p.stat().st_mtime_ns for p in sorted(prompts_dir.iterdir()) if p.is_dir())
    except OSError:
        return ()


@functools.lru_cache(maxsize=64)
def validated(text: str, label: str, prompts_dir: Path, stamp: tuple[int, ...]) -> Validation:
    """Every request that names a flow reads the whole folder to find it by name: the files
    that did not change are not validated again (a 200-step flow takes tens of ms)."""
    return validate_text(text, label, prompts_dir)


def read_folder(flows_dir: Path, prompts_dir: Path) -> list[Entry]:
    if not flows_dir.is_dir():
        return []
    return [
        _read(path, prompts_dir)
        for path in sorted(flows_dir.iterdir())
        if path.suffix in FLOW_SUFFIXES and path.is_file()
    ]


# The last reading of each flows folder, by what a directory listing tells of its files (and
# the prompts' stamp): a request naming a flow then finds it without a trip to a parsing
# thread, which on a loaded machine waits for a core longer than the work takes.
_FOLDERS: dict[tuple[Path, Path], tuple[tuple[Any, ...], list[Entry]]] = {}


def _folder_key(flows_dir: Path, prompts_dir: Path) -> tuple[Any, ...] | None:
    try:
        with os.scandir(flows_dir) as listing:
            files = sorted(
                (e.name, s.st_ino, s.st_mtime_ns, s.st_size)
                for e in listing
                if Path(e.name).suffix in FLOW_SUFFIXES and e.is_file()
                for s in [e.stat()]
            )
    except OSError:
        return None
    return (tuple(files), prompts_stamp(prompts_dir))


async def entries(flows_dir: Path, prompts_dir: Path) -> list[Entry]:
    """Every flow of the folder, read and validated (off the loop when a file changed)."""
    key = _folder_key(flows_dir, prompts_dir)
    known = _FOLDERS.get((flows_dir, prompts_dir))
    if key is not None and known is not None and known[0] == key:
        return known[1]
    found = await parse_off_loop(read_folder, flows_dir, prompts_dir)
    if key is not None:
        _FOLDERS[flows_dir, prompts_dir] = (key, found)
    return found


async def find_flow(request: web.Request) -> Entry:
    name = request.match_info["name"]
    flows_dir, prompts_dir = flow_dirs(request)
    if FLOW_NAME_RE.match(name):
        for entry in await entries(flows_dir, prompts_dir):
            if entry.name == name:
                return entry
    raise ProblemError("not-found", f"no flow '{name}' (GET /v1/flows lists them)", field="name")


_LOCKS: weakref.WeakKeyDictionary[web.Application, asyncio.Lock] = weakref.WeakKeyDictionary()


def write_lock(app: web.Application) -> asyncio.Lock:
    lock = _LOCKS.get(app)
    if lock is None:
        lock = _LOCKS[app] = asyncio.Lock()
    return lock


def check_put(
    flows_dir: Path, prompts_dir: Path, name: str, text: str
) -> tuple[Path, bool, str | None, Validation]:
    """The file a PUT replaces, whether it is new, its text now (for If-Match), and the
    validation of the new text."""
    target, created = target_of(flows_dir, prompts_dir, name)
    current = None if created else target.read_text(encoding="utf-8")
    return target, created, current, validate_text(text, f"flows/{target.name}", prompts_dir)


def target_of(flows_dir: Path, prompts_dir: Path, name: str) -> tuple[Path, bool]:
    """The file that holds flow `name` (whatever its file name), else `<name>.yaml`."""
    for entry in read_folder(flows_dir, prompts_dir):
        if entry.name == name:
            return entry.path, False
    path = flows_dir / f"{name}.yaml"
    if path.exists():  # the file name is taken by a flow of another name
        other = _read(path, prompts_dir).name
        raise ProblemError(
            "conflict",
            f"flows/{path.name} holds flow '{other}'; PUT it under that name, or choose "
            "another name for this flow",
            field="name",
        )
    return path, True


def write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # A dot name and no .yaml suffix: the runtime's scan never reads the temporary file.
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()

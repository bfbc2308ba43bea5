"""Parsing and validating documents off the event loop, without stalling it anyway.

A thread keeps the loop free only while the thread gives the GIL back, which pure Python does
every few milliseconds. One thing does not: the cyclic garbage collector. Parsing a 250 KiB
YAML flow makes about a million short-lived objects (nodes, marks, tokens); their number
triggers full collections that walk every object of the process holding the GIL, measured
here at 0.3-0.7 s each (two or three per upload). So while a document is parsed in a
thread the collector is paused: the parser's objects form no reference cycles and are freed
by reference counting as usual, and the collector resumes when the last parse ends.

The parsing threads also run at a lower CPU priority (nice 10) than the event loop, and
there are two of them: a burst of uploads queues rather than taking the cores from calls.

A person waiting on a page is another matter: the designer checks a draft after every edit
and shows its badges, a few tens of CPU milliseconds for a 200-step flow. At nice 10 on a
loaded machine those milliseconds took 3-5 times as long to get a core (measured: 22 ms of CPU
in 107 ms). `check_off_loop` runs such work for a document up to INTERACTIVE_MAX_BYTES in its
own two threads at the loop's priority; a bigger one goes to the low-priority threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

PARSE_THREADS = 2
PARSE_NICE = 10
# A 200-step flow is 17 KB; the designer's budget (a badge within 100 ms) holds up to here.
INTERACTIVE_MAX_BYTES = 64 * 1024


def _lower_priority() -> None:
    # Linux: a thread's nice value is its own (setpriority on its thread id).
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PARSE_NICE)


_executor = ThreadPoolExecutor(
    max_workers=PARSE_THREADS, thread_name_prefix="flexvoice-parse", initializer=_lower_priority
)
_interactive = ThreadPoolExecutor(max_workers=PARSE_THREADS, thread_name_prefix="flexvoice-check")
_lock = threading.Lock()
_running = 0
_was_enabled = True


def _paused(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    global _running, _was_enabled
    with _lock:
        if _running == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _running += 1
    try:
        return fn(*args, **kwargs)
    finally:
        with _lock:
            _running -= 1
            if _running == 0 and _was_enabled:
                gc.enable()


async def parse_off_loop(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """`fn(*args, **kwargs)` in a parsing thread, with the collector paused while it runs."""

    def call() -> R:
        return _paused(fn, *args, **kwargs)

    return await asyncio.get_running_loop().run_in_executor(_executor, call)


async def check_off_loop(size: int, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """As parse_off_loop, for a person waiting on the answer: at the loop's own priority when
    the document (`size` characters) is small, else in the low-priority parsing threads."""

    def call() -> R:
        return _paused(fn, *args, **kwargs)

    pool = _interactive if size <= INTERACTIVE_MAX_BYTES else _executor
    return await asyncio.get_running_loop().run_in_executor(pool, call)

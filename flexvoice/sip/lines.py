"""A worker's output read line by line as the pipe delivers it: every whole line of one read
handled in one step of the reading task (the events several calls sent meanwhile), not one
step, and one turn of the event loop, per line as `async for line in reader` costs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

READ_BYTES = 1 << 16
MAX_LINE_BYTES = 1 << 20  # a line longer than this is not an event: dropped


async def each_line(
    reader: asyncio.StreamReader,
    handle: Callable[[bytes], None],
    too_long: Callable[[], None],
) -> None:
    """`handle` each line (without its newline) until the end of the stream; a line past
    MAX_LINE_BYTES is dropped and `too_long` told."""
    rest = b""
    while chunk := await reader.read(READ_BYTES):
        *lines, rest = (rest + chunk).split(b"\n")
        for line in lines:
            handle(line)
        if len(rest) > MAX_LINE_BYTES:
            too_long()
            rest = b""

"""The pool reads a worker's events as the pipe delivers them: several in one read, one cut
across two reads, a line that is not an event logged and skipped (flexvoice.sip.pool)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flexvoice.sip.lines import MAX_LINE_BYTES, each_line
from flexvoice.sip.pool import WorkerProcess
from flexvoice.sip.protocol import Message

pytestmark = pytest.mark.unit


class _Pool:
    def __init__(self) -> None:
        self.events: list[Message] = []
        self.exited: list[int] = []

    def on_event(self, worker: Any, msg: Message) -> None:
        self.events.append(msg)

    def worker_state_changed(self, worker: Any, up: bool) -> None:
        pass

    def worker_exited(self, worker: Any, rc: int) -> None:
        self.exited.append(rc)


class _Proc:
    def __init__(self, stdout: asyncio.StreamReader):
        self.stdout = stdout

    async def wait(self) -> int:
        return 0


def test_events_in_one_read_and_cut_across_reads() -> None:
    async def main() -> _Pool:
        pool = _Pool()
        worker = WorkerProcess(pool, 1, 5070)  # type: ignore[arg-type]
        stdout = asyncio.StreamReader()
        reading = asyncio.create_task(worker._read_events(_Proc(stdout)))  # type: ignore[arg-type]
        stdout.feed_data(
            b'{"t":"state","call":"a"}\n{"t":"dtmf","call":"a","digit":"1"}\n{"t":"play_done",'
        )
        await asyncio.sleep(0)
        stdout.feed_data(b'"call":"a","code":200}\nnot json\n{"t":"state","call":"b"}\n')
        stdout.feed_eof()
        await reading
        return pool

    pool = asyncio.run(main())
    assert [(m.t, m.fields.get("call")) for m in pool.events] == [
        ("state", "a"), ("dtmf", "a"), ("play_done", "a"), ("state", "b"),
    ]  # fmt: skip
    assert pool.events[2].fields["code"] == 200
    assert pool.exited == [0]


def test_a_line_past_the_bound_is_dropped_and_said() -> None:
    async def main() -> tuple[list[bytes], int]:
        got: list[bytes] = []
        said = []
        reader = asyncio.StreamReader()
        reading = asyncio.create_task(each_line(reader, got.append, lambda: said.append(1)))
        reader.feed_data(b"x" * (MAX_LINE_BYTES + 1))
        await asyncio.sleep(0)
        reader.feed_data(b"tail\nnext\n")
        reader.feed_eof()
        await reading
        return got, len(said)

    got, said = asyncio.run(main())
    assert said == 1
    assert got == [b"tail", b"next"]  # the rest of the long line, then the next line

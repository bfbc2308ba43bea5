"""SIP MESSAGE (RFC 3428) on the worker pool: out of dialog, no call slot. A worker sends it
through its outbound proxy, the edge, which relays it to the trunk; a MESSAGE from the trunk
for one of our numbers reaches a worker, whose event comes back here."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable, Coroutine
from typing import Any

from flexvoice.logs import get_logger
from flexvoice.sip.pool import NoFreeSlot, WorkerPool, WorkerProcess
from flexvoice.sip.protocol import Message

log = get_logger(__name__)

_USER = re.compile(r"sips?:([^@;>]+)@")
_ids = itertools.count(1)

InboundHandler = Callable[[str, str, str], Coroutine[Any, Any, None]]  # from, to, text


def user_of(uri: str) -> str:
    found = _USER.search(uri)
    return found.group(1) if found else uri


class SipMessenger:
    def __init__(self, pool: WorkerPool, timeout: float = 35.0):
        self.pool = pool
        self.timeout = timeout  # > Timer F (32 s): PJSIP answers 408 itself before this
        self.on_inbound: InboundHandler | None = None
        self._waiting: dict[str, asyncio.Future[tuple[int, str, str]]] = {}
        self._turn = 0
        self._tasks: set[asyncio.Task[None]] = set()
        pool.message_hooks.append(self.on_event)

    def _worker(self) -> WorkerProcess:
        up = [w for w in self.pool.workers if w.up]
        if not up or self.pool.draining:
            raise NoFreeSlot("no SIP worker is running")
        self._turn += 1
        return up[self._turn % len(up)]

    async def send_message(self, from_addr: str, to: str, text: str) -> tuple[int, str, str]:
        """The final SIP status, reason and Call-ID of one MESSAGE (the Call-ID is empty when
        no answer came). Raises NoFreeSlot when no worker or trunk can take it."""
        uri = self.pool.target_uri(to)
        sender = self.pool.caller_id_for(from_addr) if from_addr.startswith("+") else from_addr
        worker = self._worker()
        msg_id = f"m{next(_ids)}"
        future: asyncio.Future[tuple[int, str, str]] = asyncio.get_running_loop().create_future()
        self._waiting[msg_id] = future
        try:
            worker.send("message", id=msg_id, uri=uri, body=text, **{"from": sender or ""})
            return await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            return 408, "no final answer from the worker", ""
        except ConnectionError as exc:
            raise NoFreeSlot(str(exc)) from None
        finally:
            self._waiting.pop(msg_id, None)

    def on_event(self, worker: WorkerProcess, msg: Message) -> None:
        if msg.t == "message_status":
            future = self._waiting.get(str(msg.get("id")))
            if future is not None and not future.done():
                future.set_result(
                    (
                        int(msg.get("code", 500)),
                        str(msg.get("reason", "")),
                        str(msg.get("sip_call_id") or ""),
                    )
                )
            return
        handler = self.on_inbound
        if handler is None:
            log.warning("sip.message_dropped", worker=worker.index, reason="no messaging")
            return
        task = asyncio.create_task(
            handler(
                user_of(str(msg.get("from"))), user_of(str(msg.get("to"))), str(msg.get("body"))
            )
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

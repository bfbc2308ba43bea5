"""Conference links: an internal SIP call from one worker to another on loopback, the
`Linker` of flexvoice.conference.service on top of the pool.

The parent worker originates `sip:fv-link-<token>@<host>:<child port>`; the child worker's
incoming call reaches `on_internal` (never number routing), is matched to the token (a random
one per link, so nobody outside can join a room by guessing a URI) and answered. Both ends are
plain legs without an account: not billed, not listed as calls."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any

from flexvoice.callcontrol import CallLeg
from flexvoice.logs import get_logger
from flexvoice.sip.leg import SipLeg
from flexvoice.sip.pool import NoFreeSlot, WorkerPool, WorkerProcess
from flexvoice.sip.protocol import INTERNAL_PREFIX

log = get_logger(__name__)

LINK_WAIT = 10.0


class LinkFailed(Exception):
    pass


class PoolLinker:
    def __init__(self, pool: WorkerPool):
        self.pool = pool
        self.pending: dict[str, asyncio.Future[SipLeg]] = {}
        pool.on_internal = self._incoming

    def _worker(self, placement: str) -> WorkerProcess | None:
        return next((w for w in self.pool.workers if f"worker {w.index}" == placement), None)

    def free_slots(self, placement: str) -> int:
        worker = self._worker(placement)
        return worker.free if worker is not None else 0

    def relays(self) -> dict[str, int]:
        workers = self.pool.workers
        relays = workers[len(workers) - self.pool.settings.relays :]
        return {f"worker {w.index}": w.free for w in relays if w.up}

    def stopping(self) -> bool:
        return self.pool.draining

    def incarnation(self, placement: str) -> float | None:
        """The worker's last start (loop time), None while it is down."""
        worker = self._worker(placement)
        return worker.started_at if worker is not None and worker.up else None

    async def link(self, parent: str, child: str) -> tuple[CallLeg, CallLeg]:
        """(the parent's end, the child's end) of a new link, both answered."""
        up, down = self._worker(parent), self._worker(child)
        near = next(iter(up.legs.values()), None) if up is not None else None
        if up is None or down is None or near is None:
            raise LinkFailed(f"no link from {parent} to {child}: a worker is not up")
        token = secrets.token_hex(12)
        arrived: asyncio.Future[SipLeg] = asyncio.get_running_loop().create_future()
        self.pending[token] = arrived
        uri = f"sip:{INTERNAL_PREFIX}{token}@{self.pool.settings.host}:{down.port}"
        try:
            out = self.pool.originate(uri, None, near=near, call_id=f"link-{token[:8]}")
        except NoFreeSlot as exc:
            self.pending.pop(token, None)
            raise LinkFailed(f"no link from {parent} to {child}: {exc.reason}") from None
        inbound: SipLeg | None = None
        try:
            # A refusal (the far worker full: 486) ends `out` before anything arrives.
            refused = asyncio.ensure_future(out.wait_until(lambda: out.ended, LINK_WAIT))
            either: list[asyncio.Future[Any]] = [arrived, refused]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            refused.cancel()
            if not arrived.done():
                status = out.machine.final_status
                why = f"refused ({status})" if out.ended else f"not there in {LINK_WAIT:.0f} s"
                raise LinkFailed(f"the link from {parent} to {child} was {why}")
            inbound = arrived.result()
            await inbound.answer()
            await out.wait_until(lambda: out.answered or out.ended, LINK_WAIT)
            if not out.answered or out.ended:
                raise LinkFailed(f"the link from {parent} to {child} was not answered")
        except (TimeoutError, Exception) as exc:
            await out.hangup()
            if inbound is not None:
                await inbound.hangup()
            if isinstance(exc, LinkFailed):
                raise
            raise LinkFailed(f"no link from {parent} to {child}: {exc!r}") from None
        finally:
            self.pending.pop(token, None)
        log.info("conference.link_up", parent=parent, child=child)
        return out, inbound

    async def _incoming(self, leg: SipLeg) -> None:
        token = leg.callee[len(INTERNAL_PREFIX) :]
        arrived = self.pending.get(token)
        if arrived is None or arrived.done():
            await leg.hangup(404, "Not Found")
            return
        arrived.set_result(leg)
        with contextlib.suppress(Exception):
            await leg.wait_ended()  # the link lives as long as its call

"""Conference links: an internal SIP call from one worker to another on loopback, the
`Linker` of flexvoice.conference.service on top of the pool.

The parent worker calls the token the child worker expects (flexvoice.sip.linkends: the URI,
the token, the pool's `on_internal`); the child's end is answered here. Both ends are plain
legs without an account: not billed, not listed as calls."""

from __future__ import annotations

import asyncio
from typing import Any

from flexvoice.callcontrol import CallLeg
from flexvoice.logs import get_logger
from flexvoice.sip.leg import SipLeg
from flexvoice.sip.linkends import LinkEnds, link_uri, new_token
from flexvoice.sip.pool import NoFreeSlot, WorkerPool, WorkerProcess

log = get_logger(__name__)

LINK_WAIT = 10.0


class LinkFailed(Exception):
    pass


class PoolLinker:
    def __init__(self, pool: WorkerPool):
        self.pool = pool
        self.ends = LinkEnds.of(pool)

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
        token = new_token()
        arrived = self.ends.expect(token)
        try:
            out = self.ends.call(link_uri(token, self.pool.settings.host, down.port), near, token)
        except NoFreeSlot as exc:
            self.ends.forget(token)
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
            self.ends.forget(token)
        log.info("conference.link_up", parent=parent, child=child)
        return out, inbound

"""The two ends of an internal call between workers (a link): one side expects a token, the
other calls it. Conference rooms spread over workers (flexvoice.sip.links) and a queue's
caller bridged to an agent dialled by another node (flexvoice.cluster.agents) both use it.

The caller of a link originates `sip:fv-link-<token>@<host>:<port>` through the edge (its
route[LINK] lets a worker reach only another worker); the far worker's incoming call reaches
the pool's `on_internal`, is matched to a token someone expects (a random one per link, so
nobody can join a call by guessing a URI), and answered. A token nobody expects gets 404.
Both ends are plain legs without an account: not billed, not listed as calls. A pool has one
`LinkEnds` (`LinkEnds.of`): it owns the pool's `on_internal`."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import weakref

from flexvoice.logs import get_logger
from flexvoice.sip.leg import SipLeg
from flexvoice.sip.pool import WorkerPool
from flexvoice.sip.protocol import INTERNAL_PREFIX

log = get_logger(__name__)

_BY_POOL: weakref.WeakKeyDictionary[WorkerPool, LinkEnds] = weakref.WeakKeyDictionary()


def new_token() -> str:
    return secrets.token_hex(12)  # route[LINK] takes exactly 24 hex digits


def link_uri(token: str, host: str, port: int) -> str:
    return f"sip:{INTERNAL_PREFIX}{token}@{host}:{port}"


class LinkEnds:
    def __init__(self, pool: WorkerPool):
        self.pool = pool
        self.pending: dict[str, tuple[asyncio.Future[SipLeg], bool]] = {}
        pool.on_internal = self._incoming

    @classmethod
    def of(cls, pool: WorkerPool) -> LinkEnds:
        """The pool's one instance (two would fight over its `on_internal`)."""
        ends = _BY_POOL.get(pool)
        if ends is None:
            ends = _BY_POOL[pool] = cls(pool)
        return ends

    def expect(self, token: str, *, answer: bool = False) -> asyncio.Future[SipLeg]:
        """The link's far end once it arrives (answered first when `answer`); `forget` the
        token when it is no longer wanted."""
        arrived: asyncio.Future[SipLeg] = asyncio.get_running_loop().create_future()
        self.pending[token] = (arrived, answer)
        return arrived

    def forget(self, token: str) -> None:
        self.pending.pop(token, None)

    def call(self, uri: str, near: SipLeg, token: str) -> SipLeg:
        """Place the link from `near`'s worker (NoFreeSlot when it has no slot left)."""
        return self.pool.originate(uri, None, near=near, call_id=f"link-{token[:8]}")

    async def _incoming(self, leg: SipLeg) -> None:
        token = leg.callee[len(INTERNAL_PREFIX) :]
        arrived, answer = self.pending.pop(token, (None, False))
        if arrived is None or arrived.done():
            await leg.hangup(404, "Not Found")
            return
        if answer:
            try:
                await leg.answer()
            except Exception as exc:
                arrived.set_exception(exc)
                return
        arrived.set_result(leg)
        with contextlib.suppress(Exception):
            await leg.wait_ended()  # the link lives as long as its call

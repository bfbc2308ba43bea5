"""A queue's caller on one node answered by an agent another node dials, the two bridged by a
link call between their workers through the shared edge (route[LINK]).

Which node dials (`pick_dialler`): `cluster.agents_from` when that node serves (the node next
to the agents' trunk, say), else the serving node with the most free call slots, the
caller's own on a tie. A ringing agent then holds a slot on the dialling node only; the
caller's worker gives one to the link once the agent answered.

The offer travels in Redis (an engine every node has, with blocking pops that answer within a
time limit): the caller's node expects a link token on the caller's worker, keeps the offer
alive (`fv:aoffer:<token>`, a short TTL it renews) and pushes it on the dialling node's list
(`fv:aoffers:<node>`). That node rings the agent, as a leg of its own billed there (one usage
event, parent the caller's call), and stops when the offer is gone (the caller left, or its
node died). Once the agent answered it calls the link, bridges the agent to it and pushes the
outcome (`fv:aresult:<token>`); the caller's node bridges the caller to the link's far end.
A hang-up on either side ends the link, and the link's end ends the other side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args

from flexvoice.callcontrol import CallObserver, DialAttempt, DialResult
from flexvoice.logs import get_logger
from flexvoice.outcomes import DialOutcome, outcome_for
from flexvoice.sip.leg import SipLeg
from flexvoice.sip.linkends import LinkEnds, link_uri, new_token
from flexvoice.sip.pool import NoFreeSlot, WorkerPool, WorkerProcess

log = get_logger(__name__)

OFFER_TTL_MS = 3000  # the caller's node renews it every RENEW seconds while it waits
RENEW = 1.0
LINK_WAIT = 10.0  # for the link to be answered once the agent has
RESULT_MARGIN = 15.0  # past the ring time: the dialling node is gone


def pick_dialler(own: str, free: dict[str, int], preferred: str = "") -> str:
    """The node that dials an agent for a caller on `own`; `free` holds the serving nodes'
    free call slots."""
    if preferred and preferred in free:
        return preferred
    best = max(free.values(), default=0)
    if free.get(own, best) >= best:  # its own count unknown (not beating yet): itself
        return own
    return min(name for name, slots in free.items() if slots == best)


@dataclass(frozen=True)
class Offer:
    token: str
    account: str
    parent: str  # the caller's call id
    target: str
    ring_timeout: float
    caller_id: str | None
    link: str  # the URI of the link the caller's worker expects

    def encode(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def decode(cls, raw: Any) -> Offer:
        return cls(**json.loads(raw))


class RemoteAgents:
    """One node's side of both ends: `dial` for its callers, `serve` for the others'."""

    def __init__(
        self,
        redis: Any,
        node: str,
        pool: Callable[[], WorkerPool | None],
        observer: Callable[[], CallObserver | None],
        free: Callable[[], Any],
        preferred: str = "",
    ):
        self.redis = redis
        self.node = node
        self.pool = pool
        self.observer = observer
        self.free = free  # async () -> {serving node: free call slots}
        self.preferred = preferred
        self.tasks: set[asyncio.Task[None]] = set()

    # -- the caller's node ----------------------------------------------------------------
    async def dial(
        self, leg: SipLeg, account: str, target: str, ring_timeout: float, caller_id: str | None
    ) -> DialResult | None:
        """The dial through another node; None when this node dials it itself."""
        pool = self.pool()
        if pool is None or not isinstance(leg.worker, WorkerProcess):
            return None
        try:
            dialler = pick_dialler(self.node, await self.free(), self.preferred)
        except Exception:  # Redis away: this node dials (the line needs Redis anyway)
            return None
        if dialler == self.node:
            return None
        token = new_token()
        ends = LinkEnds.of(pool)
        arrived = ends.expect(token, answer=True)
        offer = Offer(token, account, leg.call_id, target, ring_timeout, caller_id,
                      link_uri(token, pool.settings.host, leg.worker.port))  # fmt: skip
        key = f"fv:aoffer:{token}"
        await self.redis.set(key, self.node, px=OFFER_TTL_MS)
        await self.redis.rpush(f"fv:aoffers:{dialler}", offer.encode())
        log.info("cluster.agent_offered", call_id=leg.call_id, target=target, dialler=dialler)
        try:
            outcome = await self._wait(leg, key, token, ring_timeout + RESULT_MARGIN)
            if outcome.get("outcome") != "completed":
                return DialResult([_attempt(target, outcome)])
            link = await asyncio.wait_for(arrived, LINK_WAIT)
        except TimeoutError:
            return DialResult([DialAttempt(target, "failed", 504, f"{dialler} did not answer")])
        finally:
            ends.forget(token)
            with contextlib.suppress(Exception):
                await self.redis.delete(key)
        leg.children.append(link)  # ended with the caller: its BYE ends the agent's leg
        if leg.ended:  # the caller left as the link came up: nobody to bridge to
            await link.hangup()
            return DialResult([DialAttempt(target, "canceled", 487, "caller left")])
        leg.send("bridge", other=link.worker_call)
        leg.bridged_to = link
        return DialResult([_attempt(target, outcome)], answered=link, answered_target=target)

    async def _wait(self, leg: SipLeg, key: str, token: str, limit: float) -> dict[str, Any]:
        """The dialling node's outcome; the offer renewed meanwhile, dropped if the caller
        leaves (the dialler then cancels the agent)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while loop.time() < deadline:
            if leg.ended:
                return {"outcome": "canceled", "sip_status": 487, "reason": "caller left"}
            got = await self.redis.blpop([f"fv:aresult:{token}"], timeout=RENEW)
            if got is not None:
                return dict(json.loads(got[1]))
            await self.redis.pexpire(key, OFFER_TTL_MS)
        raise TimeoutError

    # -- the dialling node ----------------------------------------------------------------
    async def serve(self) -> None:
        """Take this node's offers until cancelled. Offers left from this node's former life
        are dropped: their callers were told long ago that nobody answered."""
        with contextlib.suppress(Exception):
            await self.redis.delete(f"fv:aoffers:{self.node}")
        while True:
            try:
                got = await self.redis.blpop([f"fv:aoffers:{self.node}"], timeout=1)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("cluster.agent_offers_unreachable")
                await asyncio.sleep(1.0)
                continue
            if got is None:
                continue
            task = asyncio.get_running_loop().create_task(self.answer(Offer.decode(got[1])))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def answer(self, offer: Offer) -> None:
        try:
            await self._answer(offer)
        except Exception:
            log.exception("cluster.agent_offer_failed", call_id=offer.parent)
            with contextlib.suppress(Exception):  # else the caller's node waits out its limit
                await self._result(offer, {"outcome": "failed", "sip_status": 500,
                                           "reason": "error"})  # fmt: skip

    async def _result(self, offer: Offer, outcome: dict[str, Any]) -> None:
        key = f"fv:aresult:{offer.token}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, json.dumps(outcome))
            pipe.expire(key, 60)
            await pipe.execute()

    async def _answer(self, offer: Offer) -> None:
        pool = self.pool()
        if pool is None:
            await self._result(offer, {"outcome": "failed", "sip_status": 503, "reason": "no pool"})
            return
        if not await self.redis.exists(f"fv:aoffer:{offer.token}"):
            return  # the caller left (or its node died) while the offer waited: ring nobody
        try:
            agent = pool.originate(pool.target_uri(offer.target), offer.caller_id)
        except NoFreeSlot as exc:
            await self._result(offer, {"outcome": "failed", "sip_status": 503,
                                       "reason": exc.reason})  # fmt: skip
            return
        agent.account = offer.account
        agent.remote_parent = offer.parent
        agent.observer = observer = self.observer()
        if observer is not None:  # a call resource of its own, a child of the caller's call
            child: dict[str, object] = {"parent_call_id": offer.parent, "from": agent.caller,
                                        "to": agent.callee}  # fmt: skip
            observer.call_event(agent.call_id, "leg", child)
        if not await self._ring(offer, agent):
            return
        link: SipLeg | None = None
        try:
            link = LinkEnds.of(pool).call(offer.link, agent, offer.token)
            await link.wait_until(lambda: link.answered or link.ended, LINK_WAIT)
        except NoFreeSlot:
            pass
        if link is None or not link.answered or link.ended:
            await agent.hangup(503, "no link", ended_by="flow", cause="link_failed")
            if link is not None:
                await link.hangup()
            await self._result(offer, {"outcome": "failed", "sip_status": 503,
                                       "reason": "link failed"})  # fmt: skip
            return
        agent.send("bridge", other=link.worker_call)
        agent.bridged_to = link
        await self._result(offer, {"outcome": "completed", "sip_status": 200, "reason": "OK",
                                   "agent": agent.call_id})  # fmt: skip
        log.info("cluster.agent_bridged", call_id=offer.parent, agent=agent.call_id)
        await agent.wait_until(lambda: agent.ended or link.ended, None, others=[link])
        if not agent.ended:  # the caller's side hung up: the link's BYE came from there
            await agent.hangup(200, "caller left", ended_by="caller")
        if not link.ended:
            await link.hangup()

    async def _ring(self, offer: Offer, agent: SipLeg) -> bool:
        """True once the agent answered; else the agent's leg ended and the outcome sent."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + offer.ring_timeout
        while not (agent.answered or agent.ended):
            if loop.time() >= deadline:
                await agent.hangup(487, "ring timeout", ended_by="flow", outcome="no-answer",
                                   cause="ring_timeout")  # fmt: skip
                break
            if not await self.redis.exists(f"fv:aoffer:{offer.token}"):
                await agent.hangup(487, "caller left", ended_by="caller", outcome="canceled",
                                   cause="caller_left")  # fmt: skip
                break
            await agent.wait_until(lambda: agent.answered or agent.ended, 0.5)
        if agent.answered and not agent.ended:
            return True
        m = agent.machine
        await self._result(offer, {"outcome": m.outcome or outcome_for(m.final_status or 487),
                                   "sip_status": m.final_status or 487,
                                   "reason": m.cause or m.reason})  # fmt: skip
        return False


OUTCOMES: dict[str, DialOutcome] = {o: o for o in get_args(DialOutcome)}


def _attempt(target: str, outcome: dict[str, Any]) -> DialAttempt:
    status = int(outcome.get("sip_status") or 487)
    kind = OUTCOMES.get(str(outcome.get("outcome")), outcome_for(status))
    return DialAttempt(target, kind, status, str(outcome.get("reason") or ""))

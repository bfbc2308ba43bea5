"""The outbound queue over the gateways: what is due is claimed, submitted (a window of parts
in flight), then marked sent, retried with back-off or failed; a message's status, bill and
status callback follow from its parts.

The asyncio parts are thin: `_take()` claims what is due for the free slots of the window and
starts it; `run()` calls it whenever a slot frees or a message comes, `pump()` (one pass, for
tests) until nothing due is left. The results of the parts answered within one turn of
the event loop are written in one transaction (GroupCommit).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from typing import Any

from flexvoice.logs import get_logger
from flexvoice.messaging.context import Context, iso
from flexvoice.messaging.gateway import GatewayRejected, GatewayUnavailable
from flexvoice.messaging.model import (
    ERROR_TEXT,
    EXPIRED,
    GATEWAY_ERROR,
    Receipt,
    message_status,
)
from flexvoice.messaging.queue_store import DuePart
from flexvoice.messaging.store import MessageRow

log = get_logger(__name__)

ACCEPTED = frozenset({"sent", "delivered", "undelivered"})  # parts the gateway took
CODE_LOST = "the verification code was lost with the node that made it; request a new one"


class Sending(Context):
    def backoff(self, failures: int) -> float:
        return float(
            min(
                self.settings.retry_base * 2 ** min(max(0, failures - 1), 30),
                self.settings.retry_max,
            )
        )

    async def run(self) -> None:
        """Send continuously: up to `window` parts in flight; a freed slot, a new message or
        a gateway coming back takes the next due part at once (a slow submit holds back
        only its own slot)."""
        resumed = await self.commits.write(self.store.resume)
        if resumed:
            log.info("sms.resumed", parts=resumed)
        try:
            while True:
                self._wake.clear()  # before taking: a wake from here on is not missed
                try:
                    delay = await self._take(self.clock())
                except Exception:
                    log.exception("sms.queue_error")
                    delay = 1.0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
        finally:
            await self._stop_in_flight()

    def wake(self) -> None:
        self._wake.set()

    async def pump(self) -> float:
        """Send everything due now and wait until it is answered; return the seconds until
        something else is due (one pass: tests drive the queue this way, clock in hand)."""
        while True:
            await self._take(self.clock())
            if not self._in_flight:
                return await self.commits.write(self._until_next)
            await asyncio.gather(*self._in_flight.values())

    async def take_over(self, lost: str) -> int:
        """Another node is lost (flexvoice.cluster): its claimed parts go back to the queue
        here, its verification messages fail (their codes were in its memory). How many
        parts were put back."""
        back = await self.commits.write(lambda: self._take_over(lost))
        if back:
            log.warning("sms.parts_taken_over", node=lost, parts=back)
            self._wake.set()
        return back

    def _take_over(self, lost: str) -> int:
        back, codes = self.store.take_over(lost)
        for message_id in codes:
            self._refresh(message_id, GATEWAY_ERROR, CODE_LOST)
        return back

    async def _take(self, now: float) -> float:
        """Claim what is due for the free slots and start sending it; the seconds until
        there is more to take (a finished part wakes the loop sooner)."""
        free = self.settings.window - len(self._in_flight)
        if free <= 0:
            return 60.0
        claimed, delay = await self.commits.write(lambda: self._claim(now, free))
        for part in claimed:
            task = asyncio.create_task(self._one(part))
            key = (part.message_id, part.seq)
            self._in_flight[key] = task
            task.add_done_callback(functools.partial(self._slot_freed, key))
        return delay

    def _claim(self, now: float, free: int) -> tuple[list[DuePart], float]:
        """(the due parts this node now sends, the seconds until more is due); inside a
        commit."""
        self.lookups.fresh()  # the bills read the account's tariff
        due = self.store.due(now, free)
        ready: list[DuePart] = []
        for part in due:
            if part.expires_at <= now:
                self.store.fail_queued(part.message_id, f"{EXPIRED} validity period over")
                self._refresh(part.message_id, EXPIRED, ERROR_TEXT[EXPIRED])
                continue
            down = self._down.get(part.gateway)
            if down is not None and down[1] > now:
                self.store.part_retry(part, "gateway down", down[1])
                continue
            ready.append(part)
        # Only the parts this claim moved from queued to sending are sent: another node on
        # the same database may have claimed the others first.
        claimed = self.store.claim(ready)
        if len(due) >= free:
            in_flight = len(self._in_flight) + len(claimed)
            return claimed, (0.0 if in_flight < self.settings.window else 60.0)
        return claimed, self._until_next()

    def _until_next(self) -> float:
        nxt = self.store.next_due()
        if nxt is None:
            return 60.0
        return max(0.0, min(60.0, nxt - self.clock()))

    def _slot_freed(self, key: tuple[str, int], _: object) -> None:
        self._in_flight.pop(key, None)
        self._wake.set()

    async def _one(self, part: DuePart) -> None:
        try:
            await self._submit(part)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not strand the part in 'sending'
            log.exception("sms.submit_error", message_id=part.message_id)
            error, at = repr(exc), self.clock() + self.backoff(1)
            await self.commits.write(lambda: self.store.part_retry(part, error, at))

    async def _stop_in_flight(self) -> None:
        """At shutdown: parts cut short stay `sending` and go back to the queue at the next
        start (resume)."""
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _submit(self, part: DuePart) -> None:
        gateway = self.gateways.get(part.gateway)
        payload = part.part
        secret_body = self._secret_bodies.get(part.message_id)
        if secret_body is not None:
            payload = self.parts_for(part.gateway, secret_body, 0)[1][part.seq]
            if part.part.esm_class:  # keep the reference the stored parts were made with
                payload = type(payload)(
                    part.part.payload[:6] + payload.payload[6:],
                    payload.data_coding,
                    payload.esm_class,
                )
        elif part.origin == "verification":
            await self._fail_part(part, GATEWAY_ERROR, CODE_LOST)
            return
        if gateway is None:
            await self._fail_part(
                part, GATEWAY_ERROR, f"gateway '{part.gateway}' is not configured on this node"
            )
            return
        try:
            gateway_id = await gateway.submit(part.from_addr, part.to_addr, payload)
        except GatewayUnavailable as exc:
            failures = self._down.get(part.gateway, (0, 0.0))[0] + 1
            at = self.clock() + self.backoff(failures)
            self._down[part.gateway] = (failures, at)
            error = str(exc)
            await self.commits.write(lambda: self.store.part_retry(part, error, at))
            log.warning(
                "sms.gateway_unavailable",
                gateway=part.gateway,
                message_id=part.message_id,
                error=str(exc),
                retry_in=round(at - self.clock(), 1),
            )
            return
        except GatewayRejected as exc:
            await self._fail_part(part, exc.code, str(exc))
            return
        self._down.pop(part.gateway, None)

        def sent() -> None:
            self.store.part_sent(part, gateway_id)
            self._refresh(part.message_id)
            for receipt in self._early.take(part.gateway, gateway_id):  # came before this
                if not self._apply_receipt(part.gateway, receipt):
                    self._unmatched(part.gateway, receipt)

        try:
            await self.commits.write(sent)
        except Exception:
            # The gateway has the part: whatever failed after that (a bug, the usage sink),
            # it must never go back to the queue and out a second time. Record it as sent
            # alone; if even that fails it stays `sending` (never resent but at a restart).
            log.exception("sms.record_error", message_id=part.message_id, part=part.seq + 1)
            await self.commits.write(lambda: self.store.part_sent(part, gateway_id))

    def _apply_receipt(self, gateway: str, receipt: Receipt) -> bool:
        """Move the part a receipt names on; False when no recorded part has its id."""
        found = self.store.find_part(gateway, receipt.gateway_id)
        if found is None:
            return False
        message_id, seq = found
        code = receipt.error_code
        error = f"{code} receipt {receipt.state} err:{receipt.error}" if code else None
        if self.store.set_part_status(message_id, seq, receipt.status, error):
            self._refresh(message_id, code, ERROR_TEXT.get(code or 0))
        return True

    def _unmatched(self, gateway: str, receipt: Receipt) -> None:
        log.warning(
            "sms.receipt_unmatched",
            gateway=gateway,
            gateway_id=receipt.gateway_id,
            state=receipt.state,
        )

    async def _fail_part(self, part: DuePart, code: int, message: str) -> None:
        def failed() -> None:
            self.store.part_failed(part.message_id, part.seq, f"{code} {message}")
            self._refresh(part.message_id, code, message)

        await self.commits.write(failed)
        log.warning(
            "sms.part_failed",
            message_id=part.message_id,
            part=part.seq + 1,
            error_code=code,
            error=message,
        )

    def _refresh(
        self, message_id: str, error_code: int | None = None, error: str | None = None
    ) -> None:
        """Recompute the message from its parts; bill, call back and forget secrets as due."""
        found = self.store.with_parts(message_id)
        if found is None:
            return
        row, parts = found
        status = message_status(parts)
        now = self.clock()
        fields: dict[str, Any] = {}
        if status != row.status:
            fields["status"] = status
        if (
            status in ("failed", "undelivered")
            and error_code is not None
            and row.error_code is None
        ):
            fields["error_code"] = error_code
            fields["error_message"] = error or ERROR_TEXT.get(error_code, "")
        settled = not any(p in ("queued", "sending") for p in parts)
        accepted = sum(1 for p in parts if p in ACCEPTED)
        # All parts taken: the message's segments (a whole-text gateway has one part for all).
        billable = row.segments if accepted == len(parts) else accepted
        if settled and accepted and row.sent_at is None:
            fields["sent_at"] = now
        event: dict[str, Any] | None = None
        if settled:
            self._secret_bodies.pop(message_id, None)
            if accepted and row.billed == 0:
                event, price = self._bill(row, billable, now)
                fields.update(price, billed=1)
            elif not accepted and row.billed == 0:
                fields.update(price_eur="0", billed=1)
        if fields:
            fields["updated_at"] = now
            # One UPDATE flips `billed` and writes the rest; whoever flips it records the
            # usage event (once, even with two nodes on one database).
            if not self.store.update_message(message_id, unbilled=event is not None, **fields):
                for name in ("billed", "price_eur", "price_note"):
                    fields.pop(name, None)
                event = None
                self.store.update_message(message_id, **fields)
        if event is not None:
            self._record(message_id, event)
        if "status" in fields:
            log.info(
                "sms.status",
                message_id=message_id,
                status=status,
                error_code=fields.get("error_code", row.error_code),
            )
            if row.status_callback:  # called back once committed
                self._after_commit.append(dataclasses.replace(row, **fields))

    def _bill(
        self, row: MessageRow, segments: int, now: float
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The one `sms` usage event of the message, and its price for the message."""
        sent_at = iso(now) or ""
        event = {
            "id": f"sms:{row.id}",
            "account": row.account,
            "kind": "sms",
            "from": row.from_addr,
            "to": row.to_addr,
            "sent_at": sent_at,
            "segments": segments,
        }
        # The price of that event, by the same rating (kept since the accept).
        unit, note = self.lookups.sms_price(row.account, row.from_addr, row.to_addr, sent_at, now)
        price = unit * segments if unit is not None else None
        return event, {"price_eur": str(price) if price is not None else None, "price_note": note}

    def _record(self, message_id: str, event: dict[str, Any]) -> None:
        if self.usage is not None:
            self.usage.record(event)
        else:
            log.warning(
                "sms.usage_not_recorded",
                message_id=message_id,
                reason="no usage sink on this node",
            )

"""What the gateways send back: delivery receipts (a part's final state), and inbound
messages (long ones joined from their parts, STOP/START kept as the opt-out list, stored and
POSTed to the account's `sms_url`)."""

from __future__ import annotations

from flexvoice.logs import get_logger
from flexvoice.messaging.gateway import Inbound
from flexvoice.messaging.model import Receipt
from flexvoice.messaging.sending import Sending
from flexvoice.messaging.store import MessageRow
from flexvoice.messaging.text import split

log = get_logger(__name__)

STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "ARRET", "STOPP"}
)
START_WORDS = frozenset({"START", "YES", "UNSTOP"})


class Receiving(Sending):  # a receipt moves a part on as the queue does (Sending._refresh)
    async def receipt(self, gateway: str, receipt: Receipt) -> None:
        # Matched inside the commit: it sees every part recorded as sent before it; one
        # that matches nothing yet waits there for its part (EarlyReceipts, touched only
        # inside commits).
        await self.commits.write(lambda: self._receipt(gateway, receipt))

    def _receipt(self, gateway: str, receipt: Receipt) -> None:
        if self._apply_receipt(gateway, receipt):
            return
        now = self.clock()
        for late_gateway, late in self._early.expired(now):
            self._unmatched(late_gateway, late)
        if not self._early.park(gateway, receipt, now):
            self._unmatched(gateway, receipt)

    async def inbound(self, gateway: str, message: Inbound) -> None:
        text = message.text
        if message.concat is not None:
            ref, count, index = message.concat
            key = (message.from_addr, message.to_addr, ref)
            got = self._concat.setdefault(key, {})
            got[index] = text
            if len(got) < count:
                return
            text = "".join(got[i] for i in sorted(got))
            del self._concat[key]
        row = await self.commits.write(lambda: self._store_inbound(gateway, message, text))
        if row is None:
            return
        log.info("sms.received", message_id=row.id, account=row.account, gateway=gateway)
        url = self.settings.account(row.account).sms_url
        if url and self.webhooks is not None:
            self.webhooks.enqueue(
                row.account, url, "received", {"event": "received", "message": self.resource(row)}
            )

    def _store_inbound(self, gateway: str, message: Inbound, text: str) -> MessageRow | None:
        """The message stored, and the opt-out list kept; inside a commit."""
        self.lookups.fresh()
        account = self.lookups.owner(message.to_addr)
        if account is None:
            log.warning("sms.inbound_unknown_number", gateway=gateway, to=message.to_addr)
            return None
        now = self.clock()
        keyword = text.strip().upper()
        if keyword in STOP_WORDS:
            self.lookups.set_opted_out(message.to_addr, message.from_addr, True, now)
            log.info("sms.opt_out", sender=message.to_addr, number=message.from_addr)
        elif keyword in START_WORDS:
            self.lookups.set_opted_out(message.to_addr, message.from_addr, False, now)
            log.info("sms.opt_in", sender=message.to_addr, number=message.from_addr)
        encoding, parts = split(text, 0)
        return self.store.add_inbound(
            account=account,
            from_addr=message.from_addr,
            to_addr=message.to_addr,
            body=text,
            encoding=encoding,
            segments=len(parts),
            now=now,
            gateway=gateway,
        )

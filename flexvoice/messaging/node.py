"""Messaging as a node component: the gateways configured in flexvoice.yaml, the service,
its queue task. Published as MESSAGING for the API and the flows' `sms` step."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from flexvoice.calls import WebhookSender
from flexvoice.config import Config
from flexvoice.logs import get_logger
from flexvoice.messaging.gateway import Gateway, Inbound
from flexvoice.messaging.service import AccountSettings, Messaging, Settings
from flexvoice.messaging.sipmsg import MessageTransport, SipMessageGateway
from flexvoice.messaging.smpp import SmppGateway
from flexvoice.metering.sink import USAGE_SINK
from flexvoice.metering.tariffs import TariffBook, load_tariffs
from flexvoice.numbers import NumberRegistry
from flexvoice.server import CONFIG
from flexvoice.storage.sqlite import connect

log = get_logger(__name__)

MESSAGING = web.AppKey("messaging", Messaging)
# The API component publishes its signed, persistent webhook queue here.
MESSAGE_WEBHOOKS: web.AppKey[WebhookSender] = web.AppKey("message_webhooks")
# The SIP layer (which starts after messaging) publishes how to send a SIP MESSAGE here.
MESSAGE_TRANSPORT: web.AppKey[MessageTransport] = web.AppKey("message_transport")


def settings_from(cfg: Config) -> Settings:
    m = cfg.messaging
    return Settings(
        default_gateway=None if m.gateway == "none" else m.gateway,
        retry_base=m.retry_base,
        retry_max=m.retry_max,
        validity=m.validity,
        window=m.window,
        accounts={
            name: AccountSettings(tuple(a.senders), a.sms_url, a.gateway)
            for name, a in m.accounts.items()
        },
    )


def gateways_from(cfg: Config, app: web.Application) -> dict[str, Gateway]:
    wanted = {cfg.messaging.gateway} | {a.gateway for a in cfg.messaging.accounts.values()}
    gateways: dict[str, Gateway] = {}
    if "smpp" in wanted:
        s = cfg.messaging.smpp
        gateways["smpp"] = SmppGateway(
            "smpp", s.host, s.port, s.system_id, s.password_env, s.system_type
        )
    if "sip" in wanted:
        gateways["sip"] = SipMessageGateway(lambda: app.get(MESSAGE_TRANSPORT))
    return gateways


async def sip_inbound(app: web.Application, from_user: str, to_user: str, text: str) -> None:
    """A SIP MESSAGE from the trunk, whichever gateway sends the node's outbound SMS."""
    messaging = app.get(MESSAGING)
    if messaging is None:
        log.warning("sms.inbound_dropped", reason="messaging is not running")
        return

    def e164(user: str) -> str:
        return "+" + user if user.isdigit() else user

    await messaging.inbound("sip", Inbound(e164(from_user), e164(to_user), text))


async def messaging_component(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    conn = connect(cfg.path(cfg.storage.database))
    tariffs: TariffBook | None
    try:
        tariffs = load_tariffs(cfg.path(cfg.paths.tariffs))
    except Exception as exc:  # the usage component reports it; unpriced SMS are refused
        log.error("sms.tariffs_unavailable", error=str(exc))
        tariffs = None
    gateways = gateways_from(cfg, app)
    service = Messaging(
        conn,
        gateways,
        settings_from(cfg),
        numbers=NumberRegistry(conn),  # the node's numbers, read from the shared database
        usage=app.get(USAGE_SINK),
        webhooks=app.get(MESSAGE_WEBHOOKS),
        tariffs=tariffs,
    )
    for gateway in gateways.values():
        await gateway.start(service)
    app[MESSAGING] = service
    task = asyncio.create_task(service.run(), name="sms-queue")
    log.info("sms.started", gateways=",".join(sorted(gateways)) or "none")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for gateway in gateways.values():
            with contextlib.suppress(Exception):
                await gateway.stop()
        conn.close()

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
from flexvoice.messaging.gateway import Gateway
from flexvoice.messaging.service import AccountSettings, Messaging, Settings
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
# Gateways other components provide (the SIP layer's MESSAGE gateway), by name.
EXTRA_GATEWAYS: web.AppKey[dict[str, Gateway]] = web.AppKey("extra_gateways")


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


def gateways_from(cfg: Config) -> dict[str, Gateway]:
    wanted = {cfg.messaging.gateway} | {a.gateway for a in cfg.messaging.accounts.values()}
    gateways: dict[str, Gateway] = {}
    if "smpp" in wanted:
        s = cfg.messaging.smpp
        gateways["smpp"] = SmppGateway(
            "smpp", s.host, s.port, s.system_id, s.password_env, s.system_type
        )
    return gateways


async def messaging_component(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    conn = connect(cfg.path(cfg.storage.database))
    tariffs: TariffBook | None
    try:
        tariffs = load_tariffs(cfg.path(cfg.paths.tariffs))
    except Exception as exc:  # the usage component reports it; unpriced SMS are refused
        log.error("sms.tariffs_unavailable", error=str(exc))
        tariffs = None
    gateways = gateways_from(cfg)
    extra = app.get(EXTRA_GATEWAYS)
    if extra is not None:
        gateways.update(extra)
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

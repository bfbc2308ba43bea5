"""Messaging and verification as node components (after the API, whose signed webhook queue
they use; before the SIP pool, which publishes the SIP MESSAGE transport they look up per
message and the originator the voice channel looks up per call)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from flexvoice.appkeys import (
    CALLS,
    CONFIG,
    MESSAGE_TRANSPORT,
    MESSAGING,
    ORIGINATOR,
    TARIFFS,
    USAGE_SINK,
    VERIFIER,
    WEBHOOKS,
)
from flexvoice.config import Config
from flexvoice.errors import UserError
from flexvoice.logs import get_logger
from flexvoice.messaging.gateway import Gateway, Inbound
from flexvoice.messaging.service import AccountSettings, Messaging, Settings
from flexvoice.messaging.sipmsg import SipMessageGateway
from flexvoice.messaging.smpp import SmppGateway
from flexvoice.numbers import NumberRegistry
from flexvoice.storage.open import open_shared
from flexvoice.verify.core import Policy
from flexvoice.verify.service import Verifier, VerifySettings
from flexvoice.verify.voice import CallVoice

log = get_logger(__name__)


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
    # Messages and their queue live with the accounts, numbers and tariffs they are priced
    # under: the shared PostgreSQL when storage.database is one (any node reads any message,
    # the queue is shared), else this node's SQLite file. A connection of its own: the
    # group commit's transactions are its alone.
    conn = open_shared(cfg)
    tariffs = app.get(TARIFFS)
    gateways = gateways_from(cfg, app)
    service = Messaging(
        conn,
        gateways,
        settings_from(cfg),
        numbers=NumberRegistry(conn),
        usage=app.get(USAGE_SINK),
        webhooks=app.get(WEBHOOKS),
        tariffs=tariffs,
        node=cfg.node_name,
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
        service.commits.drain()  # receipts read while stopping are stored too
        conn.close()


def load_secret(path: Path) -> bytes:
    """The HMAC key, made (32 random bytes, mode 0600) the first time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise UserError(f"cannot create {path} (verify.secret_file): {exc.strerror}") from None
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise UserError(f"cannot read {path} (verify.secret_file): {exc.strerror}") from None
    if len(text) < 32:
        raise UserError(
            f"{path} (verify.secret_file) holds fewer than 32 characters; delete it to make "
            "a new one"
        )
    return text.encode()


async def verify_component(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    v = cfg.verify
    conn = open_shared(cfg)  # beside the messages (see messaging_component)
    tariffs = app.get(TARIFFS)
    settings = VerifySettings(
        Policy(
            validity=v.validity,
            max_checks=v.max_checks,
            max_sends=v.max_sends,
            send_window=v.send_window,
            prefix_rate=v.prefix_rate,
            countries=tuple(v.countries),
        ),
        v.sender,
        {
            n: tuple(a.verify_countries)
            for n, a in cfg.messaging.accounts.items()
            if a.verify_countries
        },
    )
    # The SIP layer starts after this component: its originator is looked up per call.
    voice = CallVoice(
        lambda: app.get(ORIGINATOR), cfg.path(cfg.paths.prompts), calls=lambda: app.get(CALLS)
    )
    verifier = Verifier(
        conn,
        load_secret(cfg.path(v.secret_file)),
        settings,
        app.get(MESSAGING),
        voice=voice,
        usage=app.get(USAGE_SINK),
        tariffs=tariffs,
    )
    app[VERIFIER] = verifier
    try:
        yield
    finally:
        await voice.close()
        verifier.db.close()
        conn.close()

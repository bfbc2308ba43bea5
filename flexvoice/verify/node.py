"""Verification as a node component (after messaging): the HMAC secret, the service."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from flexvoice.errors import UserError
from flexvoice.logs import get_logger
from flexvoice.messaging.node import MESSAGING
from flexvoice.metering.sink import USAGE_SINK
from flexvoice.metering.tariffs import load_tariffs
from flexvoice.server import CONFIG
from flexvoice.sip.node import ORIGINATOR
from flexvoice.storage.sqlite import connect
from flexvoice.verify.core import Policy
from flexvoice.verify.service import Verifier, VerifySettings
from flexvoice.verify.voice import CallVoice

log = get_logger(__name__)

VERIFIER = web.AppKey("verifier", Verifier)


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
    conn = connect(cfg.path(cfg.storage.database))
    try:
        tariffs = load_tariffs(cfg.path(cfg.paths.tariffs))
    except UserError:
        tariffs = None
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
    voice = CallVoice(lambda: app.get(ORIGINATOR), cfg.path(cfg.paths.prompts))
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
        conn.close()

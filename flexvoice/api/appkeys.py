"""Typed keys of the node application that the API shares with other components.

`numbers_component` (or the API component, when it did not run) sets NUMBER_REGISTRY and the
SIP layer's NUMBERS (each entry says whether its account is suspended); the API component
sets CALLS, WEBHOOKS and the guards;
the SIP layer sets ORIGINATOR (outbound calls on the worker pool) and the flow runtime FLOWS
(both keys are the SIP layer's own, re-exported here). Handlers read them with
`request.config_dict[KEY]`.
"""

from __future__ import annotations

from aiohttp import web

from flexvoice.api.dialer import Dialer
from flexvoice.api.framework import API_DB, IDEMPOTENCY, LOCKOUT
from flexvoice.api.guards import RateLimiter
from flexvoice.api.webhooks import WebhookQueue
from flexvoice.calls import CallRegistry
from flexvoice.metering.tariffs import TariffBook
from flexvoice.numbers import NumberRegistry
from flexvoice.sip.node import FLOWS, NUMBERS, ORIGINATOR

NUMBER_REGISTRY = web.AppKey("number_registry", NumberRegistry)
CALLS = web.AppKey("calls", CallRegistry)
WEBHOOKS = web.AppKey("webhooks", WebhookQueue)

__all__ = [
    "API_DB",
    "CALLS",
    "DIALER",
    "FLOWS",
    "IDEMPOTENCY",
    "LOCKOUT",
    "NUMBERS",
    "NUMBER_REGISTRY",
    "ORIGINATOR",
    "RATE_LIMITER",
    "TARIFFS",
    "WEBHOOKS",
]
DIALER = web.AppKey("dialer", Dialer)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
TARIFFS = web.AppKey("tariffs", TariffBook)  # the node's tariffs: call prices, usage

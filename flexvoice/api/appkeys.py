"""Typed keys of the node application that the API shares with other components.

The API component sets NUMBERS (unless a component before it did), CALLS, WEBHOOKS and the
guards; the SIP layer sets ORIGINATOR (outbound calls on the worker pool) and the flow runtime
FLOW_STARTER. Handlers read them with `request.config_dict[KEY]`.
"""

from __future__ import annotations

from aiohttp import web

from flexvoice.api.dialer import Dialer, FlowStarter
from flexvoice.api.framework import API_DB, IDEMPOTENCY, LOCKOUT
from flexvoice.api.guards import RateLimiter
from flexvoice.api.webhooks import WebhookQueue
from flexvoice.callcontrol import Originator
from flexvoice.calls import CallRegistry
from flexvoice.numbers import NumberRegistry

NUMBERS = web.AppKey("numbers", NumberRegistry)
CALLS = web.AppKey("calls", CallRegistry)
ORIGINATOR = web.AppKey("originator", Originator)
FLOW_STARTER = web.AppKey("flow_starter", FlowStarter)
WEBHOOKS = web.AppKey("webhooks", WebhookQueue)

__all__ = [
    "API_DB",
    "CALLS",
    "DIALER",
    "FLOW_STARTER",
    "IDEMPOTENCY",
    "LOCKOUT",
    "NUMBERS",
    "ORIGINATOR",
    "RATE_LIMITER",
    "WEBHOOKS",
]
DIALER = web.AppKey("dialer", Dialer)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)

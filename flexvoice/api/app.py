"""The REST API as a node component: `api_component(app)` opens its storage (SQLite, Redis when
configured), mounts the /v1 sub-application, /openapi.json and /docs, runs the webhook
deliverer, and closes everything in reverse on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
from aiohttp import web

from flexvoice.api import calls, designer, flows, numbers, recordings, statistics, usage
from flexvoice.api.appkeys import (
    API_DB,
    CALLS,
    DIALER,
    LOCKOUT,
    NUMBER_REGISTRY,
    NUMBERS,
    RATE_LIMITER,
    TARIFFS,
    WEBHOOKS,
)
from flexvoice.api.dialer import Dialer
from flexvoice.api.framework import IDEMPOTENCY, Resource, guarded, no_route
from flexvoice.api.guards import (
    IdempotencyStore,
    Lockout,
    LockoutPolicy,
    MemoryLockout,
    MemoryRateLimiter,
    RateLimiter,
    RedisIdempotencyStore,
    RedisLockout,
    RedisRateLimiter,
    SqliteIdempotencyStore,
)
from flexvoice.api.keys import ensure_schema as ensure_keys_schema
from flexvoice.api.keys import webhook_secret
from flexvoice.api.openapi import docs_routes
from flexvoice.api.pricing import TariffPricer
from flexvoice.api.statistics import STATISTICS
from flexvoice.api.webhooks import WebhookQueue
from flexvoice.calls import CallRegistry, Pricer
from flexvoice.errors import UserError
from flexvoice.logs import get_logger
from flexvoice.metering.sink import USAGE_SINK
from flexvoice.metering.tariffs import load_tariffs
from flexvoice.numbers import NumberRegistry
from flexvoice.server import CONFIG
from flexvoice.sip.node import NumberLookup
from flexvoice.statistics.service import Statistics
from flexvoice.storage.sqlite import connect

log = get_logger(__name__)

RESOURCES: list[Resource] = [
    calls.resource,
    numbers.resource,
    flows.resource,
    recordings.resource,
    usage.resource,
    statistics.resource,
]


def install_routes(app: web.Application) -> None:
    """Every resource's route table under /v1, then a catch-all so that an unknown route or
    method under /v1 is a problem document too."""
    for resource in RESOURCES:
        for route in resource.routes:
            assert isinstance(route, web.RouteDef)
            app.router.add_route(route.method, "/v1" + route.path, route.handler)
    app.router.add_route("*", "/v1/{tail:.*}", guarded(no_route))
    app.router.add_routes(docs_routes)
    designer.install(app)


def publish_numbers(app: web.Application, conn: sqlite3.Connection) -> NumberRegistry:
    """The number registry for the API: the one the SIP layer's numbers_component made, or a
    new one synced from sip/numbers.yaml (published to the SIP layer too)."""
    existing = app.get(NUMBERS)
    if isinstance(existing, NumberRegistry):
        app[NUMBER_REGISTRY] = existing
        return existing
    cfg = app[CONFIG]
    registry = NumberRegistry(conn, _usage_sink(app))
    registry.sync_from_yaml(cfg.path(cfg.sip.numbers))
    app[NUMBER_REGISTRY] = registry
    # Number's fields are read-only (frozen); the SIP layer only reads them.
    app[NUMBERS] = cast(NumberLookup, registry)
    return registry


async def api_component(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx component: everything the REST API needs, up before the node serves."""
    cfg = app[CONFIG]
    api = cfg.api
    conn = connect(cfg.path(cfg.storage.database))
    ensure_keys_schema(conn)
    app[API_DB] = conn
    publish_numbers(app, conn)

    redis_client: Any = None
    policy = LockoutPolicy(api.lockout_failures, api.lockout_window, api.lockout_time)
    lockout: Lockout
    limiter: RateLimiter
    idempotency: IdempotencyStore
    if cfg.redis.enabled:
        import redis.asyncio as aioredis

        redis_client = aioredis.from_url(cfg.redis.url)
        await redis_client.ping()
        lockout = RedisLockout(redis_client, policy)
        limiter = RedisRateLimiter(redis_client)
        idempotency = RedisIdempotencyStore(redis_client, api.idempotency_ttl)
    else:
        lockout = MemoryLockout(policy)
        limiter = MemoryRateLimiter()
        idempotency = SqliteIdempotencyStore(conn, api.idempotency_ttl)
    app[LOCKOUT] = lockout
    app[RATE_LIMITER] = limiter
    app[IDEMPOTENCY] = idempotency

    webhooks = WebhookQueue(
        conn,
        lambda account: webhook_secret(conn, account),
        retry_base_s=api.webhook_retry_base,
        retry_max_s=api.webhook_retry_max,
        max_age_s=api.webhook_max_age,
        timeout_s=api.webhook_timeout,
    )
    app[WEBHOOKS] = webhooks
    pricer: Pricer | None = None
    try:
        tariffs = load_tariffs(cfg.path(cfg.paths.tariffs))
    except UserError as exc:
        # The usage component refuses to start on this already; alone, the API still serves
        # calls, with price_eur null and price_note saying why.
        log.error("api.tariffs_unavailable", error=str(exc))
    else:
        app[TARIFFS] = tariffs
        pricer = TariffPricer(conn, tariffs)
    registry_calls = CallRegistry(conn, webhooks=webhooks, pricer=pricer)
    app[CALLS] = registry_calls
    # Statistics listen to the registry: rollups as calls end, the live board as they move.
    stats = Statistics(
        conn, registry_calls, node=f"{socket.gethostname()}-{cfg.http.port}", redis=redis_client
    )
    stats.listen(registry_calls.listeners)
    await stats.start()
    app[STATISTICS] = stats
    dialer = Dialer(registry_calls)
    app[DIALER] = dialer

    # Routes are added here so that the API is one component: aiohttp freezes the router only
    # after every startup handler ran. (A sub-application cannot be mounted at this point: its
    # signals would be added to the already frozen on_startup list.)
    install_routes(app)

    session = aiohttp.ClientSession()
    deliverer = asyncio.create_task(webhooks.deliver_forever(session), name="webhooks")
    log.info(
        "api.started",
        rate_limit_cps=api.rate_limit_cps,
        shared_state="redis" if redis_client is not None else "sqlite+memory",
    )
    try:
        yield
    finally:
        await dialer.close()
        await stats.stop()
        deliverer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await deliverer
        await session.close()
        if redis_client is not None:
            await redis_client.aclose()
        conn.close()


def _usage_sink(app: web.Application) -> Any:
    """The metering sink (UsageSink.record) when a component before us published one."""
    return app.get(USAGE_SINK)

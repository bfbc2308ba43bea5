"""The REST API as a node component: its guards (Redis when configured), the webhook
deliverer, the call registry and dialer, and the /v1 routes, /openapi.json and /docs; closed
in reverse on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from flexvoice.api import designer, statistics_page
from flexvoice.api.app import RESOURCES
from flexvoice.api.dialer import Dialer
from flexvoice.api.framework import guarded, no_route
from flexvoice.api.guards import (
    IdempotencyStore,
    Lockout,
    LockoutPolicy,
    MemoryRateLimiter,
    RateLimiter,
    RedisIdempotencyStore,
    RedisLockout,
    RedisRateLimiter,
    SqliteIdempotencyStore,
    SqliteLockout,
)
from flexvoice.api.keys import ensure_schema as ensure_keys_schema
from flexvoice.api.keys import webhook_secret
from flexvoice.api.openapi import SPEC, build_spec, docs_routes
from flexvoice.api.pricing import TariffPricer
from flexvoice.api.webhooks import WebhookQueue
from flexvoice.appkeys import (
    CALLS,
    CONFIG,
    DB,
    DIALER,
    IDEMPOTENCY,
    KEY_CHECKS,
    LOCKOUT,
    NUMBERS,
    RATE_LIMITER,
    SHARED_DB,
    STATISTICS,
    TARIFFS,
    WEBHOOKS,
    need,
)
from flexvoice.calls import CallRegistry
from flexvoice.logs import get_logger
from flexvoice.statistics.service import Statistics
from flexvoice.storage.readcache import ReadCache

log = get_logger(__name__)


def install_routes(app: web.Application) -> None:
    """Every resource's route table under /v1, then a catch-all so that an unknown route or
    method under /v1 is a problem document too."""
    for resource in RESOURCES:
        for route in resource.routes:
            assert isinstance(route, web.RouteDef)
            app.router.add_route(route.method, "/v1" + route.path, route.handler)
    app.router.add_route("*", "/v1/{tail:.*}", guarded(no_route))
    app[SPEC] = build_spec(RESOURCES)
    app.router.add_routes(docs_routes)
    designer.install(app)  # the designer's page and its session-authenticated API
    statistics_page.install(app)  # the console's Statistics view (same session)


async def end_live_streams(app: web.Application) -> None:
    """on_shutdown: open live streams end before aiohttp waits for running handlers."""
    stats = app.get(STATISTICS)
    if stats is not None:
        stats.close_streams()


async def api_component(app: web.Application) -> AsyncIterator[None]:
    """Everything the REST API needs, up before the node serves."""
    cfg = app[CONFIG]
    api = cfg.api
    conn = need(app, DB, "database_component", "api_component")
    shared = app[SHARED_DB]  # accounts, keys, webhook secrets and tariffs of accounts
    tariffs = need(app, TARIFFS, "tariffs_component", "api_component")
    need(app, NUMBERS, "numbers_component", "api_component")  # the /v1/numbers handlers
    ensure_keys_schema(shared)

    redis_client: Any = None
    policy = LockoutPolicy(api.lockout_failures, api.lockout_window, api.lockout_time)
    lockout: Lockout
    limiter: RateLimiter
    idempotency: IdempotencyStore
    if cfg.redis.enabled:
        redis_client = aioredis.from_url(cfg.redis.url)
        await redis_client.ping()
        lockout = RedisLockout(redis_client, policy)
        limiter = RedisRateLimiter(redis_client)
        idempotency = RedisIdempotencyStore(redis_client, api.idempotency_ttl)
    else:
        lockout = SqliteLockout(conn, policy)  # kept across restarts
        limiter = MemoryRateLimiter()
        idempotency = SqliteIdempotencyStore(conn, api.idempotency_ttl)
    app[LOCKOUT] = lockout
    app[KEY_CHECKS] = ReadCache(shared)
    app[RATE_LIMITER] = limiter
    app[IDEMPOTENCY] = idempotency

    # Calls, their legs and trace, and webhook deliveries live in the shared store (the same
    # file as `conn` on one node; PostgreSQL for several).
    webhooks = WebhookQueue(
        shared,
        lambda account: webhook_secret(shared, account),
        retry_base_s=api.webhook_retry_base,
        retry_max_s=api.webhook_retry_max,
        max_age_s=api.webhook_max_age,
        timeout_s=api.webhook_timeout,
    )
    app[WEBHOOKS] = webhooks
    registry_calls = CallRegistry(
        shared,
        webhooks=webhooks,
        pricer=TariffPricer(shared, tariffs),
        node=cfg.node_name,
        group_commit=True,  # a turn's events in one commit (SQLite; flexvoice.storage.turn)
    )
    app[CALLS] = registry_calls
    # Statistics listen to the registry: rollups as calls end, the live board as they move.
    # The rollups live beside the calls (the shared store): any node answers for all.
    stats = Statistics(shared, registry_calls, node=cfg.node_name, redis=redis_client)
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

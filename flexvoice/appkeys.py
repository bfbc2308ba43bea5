"""The node's shared objects, one typed key each.

A component (flexvoice/node/) publishes what it builds with `app[KEY] = obj`; components that
start after it, and API handlers (`request.config_dict[KEY]`), read it. One key per object:
nothing is published twice under two names.

Only the node's components and the API read these keys (an import contract in pyproject.toml
says so): the SIP, flow and metering layers get what they need as constructor arguments and
know nothing about aiohttp applications. The types are imported for the type checker only, so
this module imports nothing of the engine at run time and cannot take part in an import cycle.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web

if TYPE_CHECKING:
    from flexvoice.api.dialer import Dialer
    from flexvoice.api.framework import KeyCheck
    from flexvoice.api.guards import IdempotencyStore, Lockout, RateLimiter
    from flexvoice.api.webhooks import WebhookQueue
    from flexvoice.callcontrol import Originator
    from flexvoice.calls import CallRegistry
    from flexvoice.cluster.member import Member
    from flexvoice.conference.service import ConferenceService
    from flexvoice.config import Config
    from flexvoice.flows.deps import FlowDeps
    from flexvoice.flows.runtime import FlowRuntime
    from flexvoice.messaging.service import Messaging
    from flexvoice.messaging.sipmsg import MessageTransport
    from flexvoice.metering.sink import UsageSink
    from flexvoice.metering.tariffs import TariffBook
    from flexvoice.node.heartbeat import LegHeartbeat
    from flexvoice.node.status import NodeStatus, ServeOptions
    from flexvoice.numbers import NumberRegistry
    from flexvoice.recordings.service import RecordingService
    from flexvoice.sip.edge import Edge
    from flexvoice.sip.pool import WorkerPool
    from flexvoice.sip.trunks import Trunks
    from flexvoice.statistics.service import Statistics
    from flexvoice.storage.engine import Connection
    from flexvoice.storage.postgres import PgPool
    from flexvoice.verify.service import Verifier

T = TypeVar("T")

# Set by build_app before any component runs.
CONFIG: web.AppKey[Config] = web.AppKey("config")
OPTIONS: web.AppKey[ServeOptions] = web.AppKey("options")
STATUS: web.AppKey[NodeStatus] = web.AppKey("status")  # what /healthz reports

# Shared data, loaded once (flexvoice/node/shared.py).
DB: web.AppKey[sqlite3.Connection] = web.AppKey("db")  # the event loop's SQLite connection
# Accounts, API keys and numbers: the same connection as DB on one node; with a PostgreSQL
# storage.database, the event loop's connection to it (shared by every node).
SHARED_DB: web.AppKey[Connection] = web.AppKey("shared_db")
# With PostgreSQL: a few more connections to it, for work done on worker threads.
SHARED_POOL: web.AppKey[PgPool] = web.AppKey("shared_pool")
TARIFFS: web.AppKey[TariffBook] = web.AppKey("tariffs")
TRUNKS: web.AppKey[Trunks] = web.AppKey("trunks")

USAGE_SINK: web.AppKey[UsageSink] = web.AppKey("usage_sink")
NUMBERS: web.AppKey[NumberRegistry] = web.AppKey("numbers")
FLOW_DEPS: web.AppKey[FlowDeps] = web.AppKey("flow_deps")  # optional, set by tests
FLOWS: web.AppKey[FlowRuntime] = web.AppKey("flows")

# The REST API's own state.
CALLS: web.AppKey[CallRegistry] = web.AppKey("calls")
WEBHOOKS: web.AppKey[WebhookQueue] = web.AppKey("webhooks")
DIALER: web.AppKey[Dialer] = web.AppKey("dialer")
RATE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("rate_limiter")
LOCKOUT: web.AppKey[Lockout] = web.AppKey("lockout")
KEY_CHECKS: web.AppKey[KeyCheck] = web.AppKey("key_checks")
IDEMPOTENCY: web.AppKey[IdempotencyStore] = web.AppKey("idempotency")
STATISTICS: web.AppKey[Statistics] = web.AppKey("statistics")
RECORDINGS: web.AppKey[RecordingService] = web.AppKey("recordings")
CONFERENCES: web.AppKey[ConferenceService] = web.AppKey("conferences")

# SIP.
EDGE: web.AppKey[Edge] = web.AppKey("sip_edge")
POOL: web.AppKey[WorkerPool] = web.AppKey("sip_pool")
ORIGINATOR: web.AppKey[Originator] = web.AppKey("originator")
# Answered legs noted in the database, so a killed node bills them at its next start.
HEARTBEAT: web.AppKey[LegHeartbeat] = web.AppKey("leg_heartbeat")
# This node in the cluster (flexvoice/node/cluster.py); absent on a node on its own.
CLUSTER: web.AppKey[Member] = web.AppKey("cluster")
# How to send a SIP MESSAGE (the pool publishes it; the SIP gateway looks it up per message).
MESSAGE_TRANSPORT: web.AppKey[MessageTransport] = web.AppKey("message_transport")

# Messaging and verification (flexvoice/node/messaging.py).
MESSAGING: web.AppKey[Messaging] = web.AppKey("messaging")
VERIFIER: web.AppKey[Verifier] = web.AppKey("verifier")


def need(app: web.Application, key: web.AppKey[T], publisher: str, reader: str) -> T:
    """`app[key]`, or a start-up error naming the component that should have published it."""
    try:
        return app[key]
    except KeyError:
        raise RuntimeError(
            f"{reader} needs what {publisher} publishes ({key!r}): put {publisher} before "
            f"{reader} in the node's component list (flexvoice/node/assembly.py)"
        ) from None

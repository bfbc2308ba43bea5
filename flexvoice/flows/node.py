"""The flow runtime as a component of `flexvoice serve` (an aiohttp cleanup_ctx).

Other components reach the runtime through `app[FLOW_RUNTIME]` (the SIP layer calls
`start_call` for each inbound call; the API for calls it places). Components that start
earlier may put a `FlowDeps` in `app[FLOW_DEPS]` (usage sink, number registry lookups,
observer); the runtime then uses it instead of the defaults.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from flexvoice.flows.interpreter import FlowDeps
from flexvoice.flows.runtime import FlowRuntime
from flexvoice.server import CONFIG

FLOW_RUNTIME = web.AppKey("flow_runtime", FlowRuntime)
FLOW_DEPS = web.AppKey("flow_deps", FlowDeps)


async def flows_component(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    deps = app.get(FLOW_DEPS) or FlowDeps()
    deps.recordings_dir = cfg.path(cfg.storage.recordings)
    deps.tts_cache_dir = cfg.path("var/tts")
    # The SIP layer writes every leg's `call` event itself; the flows add recordings and
    # reroutes only, so no leg is billed twice under two ids.
    deps.call_usage = False
    runtime = FlowRuntime(cfg.path(cfg.paths.flows), cfg.path(cfg.paths.prompts), deps)
    await runtime.start()
    app[FLOW_RUNTIME] = runtime
    try:
        yield
    finally:
        await runtime.stop()

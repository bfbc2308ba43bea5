"""The visual designer: a web console on the node where a business logs in, draws, checks,
tries and publishes its call flows.

- /designer/login: e-mail and password (flexvoice.users); a session cookie (HttpOnly,
  SameSite=Strict) and a CSRF token that every change must send back (X-CSRF-Token), plus an
  Origin check. API keys stay for machines; people use this.
- /designer/: the page (web/, bundled by esbuild into web/dist and served from here: nothing
  is loaded from the internet).
- /designer/api/...: what the page calls. Flows are edited as text with ruamel.yaml
  (flows.yamledit) so comments and order survive; each edit is saved as the flow's shared draft
  and validated with `validate_text`, the function behind `flexvoice flows validate`.
  Publishing writes the file atomically (the runtime loads it at once) and records a revision.
  Concurrent editors are told apart by ETag / If-Match: a stale one gets 412 with both texts.

The account must have the designer option (`flexvoice accounts set NAME --designer on`).
"""

from __future__ import annotations

from aiohttp import web

from flexvoice.api import (
    designer_call,
    designer_flows,
    designer_notes,
    designer_pages,
    designer_prompts,
    designer_testers,
    designer_users,
)


def install(app: web.Application) -> None:
    app.router.add_routes(designer_pages.routes)
    app.router.add_routes(designer_flows.routes)
    app.router.add_routes(designer_prompts.routes)
    app.router.add_routes(designer_call.routes)
    app.router.add_routes(designer_notes.routes)
    app.router.add_routes(designer_users.routes)
    app.router.add_routes(designer_testers.routes)
    designer_testers.wire_test_callers(app)  # the flows component is up before the API

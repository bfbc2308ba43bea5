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

import asyncio
import functools
import hmac
import html
import mimetypes
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from flexvoice import users
from flexvoice.accounts import designer_enabled, get_account
from flexvoice.api import flows as flow_api
from flexvoice.api.framework import (
    MAX_BODY_BYTES,
    guarded,
    parse_json,
    parse_json_body,
    read_body,
)
from flexvoice.api.problems import ProblemError
from flexvoice.appkeys import DB
from flexvoice.errors import UserError
from flexvoice.flows import revisions, yamledit
from flexvoice.flows.schema import flow_schema
from flexvoice.flows.validate import validate_text
from flexvoice.logs import get_logger
from flexvoice.offloop import parse_off_loop

log = get_logger(__name__)

COOKIE = "fv_session"
CSRF_HEADER = "X-CSRF-Token"
WEB_DIST = Path(__file__).resolve().parent.parent.parent / "web" / "dist"
STATIC_FILES = (
    "designer.js",
    "designer.css",
    "designer.js.map",
    "designer.css.map",
    "designer.js.LEGAL.txt",
    "LICENSES.txt",
)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
SESSION = web.RequestKey("designer_session", users.Session)

routes = web.RouteTableDef()
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _security_headers(response: web.StreamResponse) -> web.StreamResponse:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def _same_origin(request: web.Request) -> bool:
    """A change must come from a page of this node (browsers send Origin on POST)."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.host


def _session_of(request: web.Request) -> users.Session | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    return users.find_session(request.config_dict[DB], token)


def designer_op(*, edit: bool = False) -> Callable[[Handler], Handler]:
    """Session, designer option, role and (for changes) CSRF checks around a JSON handler."""

    def decorate(fn: Handler) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            session = _session_of(request)
            if session is None:
                raise ProblemError(
                    "unauthenticated", "you are not logged in (or the session ended); log in again"
                )
            if request.method not in ("GET", "HEAD"):
                sent = request.headers.get(CSRF_HEADER, "")
                if not _same_origin(request) or not hmac.compare_digest(sent, session.csrf):
                    raise ProblemError(
                        "forbidden",
                        "this change did not come from the designer page (CSRF check failed); "
                        "reload the page and try again",
                    )
            conn = request.config_dict[DB]
            account = session.user.account
            if not designer_enabled(conn, account):
                raise ProblemError(
                    "forbidden",
                    f"the visual designer is not switched on for account '{account}'; ask your "
                    "operator to switch it on",
                )
            if edit and not session.user.can_edit:
                raise ProblemError(
                    "forbidden",
                    f"your role ({session.user.role}) may read and try flows, not change them; "
                    "a manager or administrator can",
                )
            request[SESSION] = session
            if not edit:
                return _security_headers(await fn(request))
            # Changes read the draft, parse off the event loop and write: one at a time per
            # node, together with PUT /v1/flows (the same files).
            async with flow_api._write_lock(request.app):
                return _security_headers(await fn(request))

        handler.__name__ = fn.__name__
        return guarded(handler)

    return decorate


# ---- pages ----------------------------------------------------------------------------------

LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in - FlexVoice call flow designer</title>
<link rel="icon" href="data:,">
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; background: #f3f5f8; margin: 0; color: #1d2733; }}
main {{ max-width: 380px; margin: 10vh auto; background: #fff; padding: 32px;
  border-radius: 12px; box-shadow: 0 2px 12px #0002; }}
h1 {{ font-size: 22px; margin: 0 0 4px; }}
p.sub {{ color: #55606e; margin: 0 0 24px; }}
label {{ display: block; font-weight: 600; margin-top: 14px; }}
input {{ width: 100%; box-sizing: border-box; font-size: 16px; padding: 10px;
  border: 1px solid #b8c0cc; border-radius: 8px; margin-top: 4px; }}
input:focus, button:focus {{ outline: 3px solid #7aa7ff; outline-offset: 1px; }}
button {{ margin-top: 22px; width: 100%; font-size: 16px; padding: 11px; border: 0;
  border-radius: 8px; background: #2458d6; color: #fff; font-weight: 600; cursor: pointer; }}
.error {{ background: #fdecec; color: #8a1c1c; border: 1px solid #f3b7b7; padding: 10px 12px;
  border-radius: 8px; margin-bottom: 8px; }}
</style></head>
<body><main>
<h1>Call flow designer</h1>
<p class="sub">Log in to draw, try and publish what happens when people call you.</p>
{error}
<form method="post" action="/designer/login">
<label for="email">E-mail</label>
<input id="email" name="email" type="email" autocomplete="username" required autofocus
  value="{email}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Log in</button>
</form>
</main></body></html>
"""

APP_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>FlexVoice call flow designer</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/designer/static/designer.css">
</head><body><div id="root"></div>
<script src="/designer/static/designer.js"></script>
</body></html>
"""

MESSAGE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title><link rel="icon" href="data:,">
<style>body {{ font: 16px/1.5 system-ui, sans-serif; background: #f3f5f8; color: #1d2733; }}
main {{ max-width: 560px; margin: 12vh auto; background: #fff; padding: 32px;
border-radius: 12px; box-shadow: 0 2px 12px #0002; }}</style></head>
<body><main><h1>{title}</h1><p>{text}</p>
<form method="post" action="/designer/logout"><button type="submit">Log out</button></form>
</main></body></html>
"""


def _html(text: str, status: int = 200) -> web.Response:
    response = web.Response(text=text, content_type="text/html", charset="utf-8", status=status)
    _security_headers(response)
    return response


def _login_page(error: str = "", email: str = "", status: int = 200) -> web.Response:
    box = f'<div class="error" role="alert">{html.escape(error)}</div>' if error else ""
    return _html(LOGIN_PAGE.format(error=box, email=html.escape(email, quote=True)), status)


@routes.get("/designer")
async def designer_root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/designer/")


@routes.get("/designer/")
async def designer_page(request: web.Request) -> web.StreamResponse:
    session = _session_of(request)
    if session is None:
        raise web.HTTPFound("/designer/login")
    conn = request.config_dict[DB]
    if not designer_enabled(conn, session.user.account):
        return _html(
            MESSAGE_PAGE.format(
                title="The designer is not switched on",
                text=html.escape(
                    f"Account '{session.user.account}' does not have the visual designer. "
                    "Ask your operator to switch it on; it is billed per calendar month."
                ),
            ),
            status=403,
        )
    if not (WEB_DIST / "designer.js").is_file():
        return _html(
            MESSAGE_PAGE.format(
                title="The designer's page is not built",
                text="The node's operator must run ./run once (it builds web/ with esbuild).",
            ),
            status=503,
        )
    return _html(APP_PAGE)


@routes.get("/designer/login")
async def login_form(request: web.Request) -> web.StreamResponse:
    if _session_of(request) is not None:
        raise web.HTTPFound("/designer/")
    return _login_page()


@routes.post("/designer/login")
async def login(request: web.Request) -> web.StreamResponse:
    if not _same_origin(request):
        return _login_page("Log in from the designer's own page.", status=403)
    form = await request.post()
    email = str(form.get("email", "")).strip().lower()[:254]
    password = str(form.get("password", ""))[:1024]
    conn = request.config_dict[DB]
    # scrypt takes ~50 ms and 16 MiB: off the event loop.
    ok = await asyncio.to_thread(users.check_password, password, users.password_of(conn, email))
    try:
        user = users.record_login(conn, email, ok)
    except users.LoginRefused as exc:
        log.warning("designer.login_refused", email=email, locked=exc.locked)
        return _login_page(str(exc)[0].upper() + str(exc)[1:] + ".", email, status=401)
    account = get_account(conn, user.account)
    if account is None or account.status != "active":
        return _login_page(
            f"Account '{user.account}' is suspended; contact the operator.", email, 403
        )
    token = users.open_session(conn, user)
    log.info("designer.login", email=user.email, account=user.account)
    response = web.HTTPSeeOther("/designer/")
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/designer",
        max_age=users.SESSION_TTL_S,
    )
    raise response


@routes.post("/designer/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(COOKIE)
    if token and _same_origin(request):
        users.close_session(request.config_dict[DB], token)
    response = web.HTTPSeeOther("/designer/login")
    response.del_cookie(COOKIE, path="/designer")
    raise response


@routes.get("/designer/static/{file}")
async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["file"]
    path = WEB_DIST / name
    if name not in STATIC_FILES or not path.is_file():
        raise web.HTTPNotFound()
    kind = mimetypes.guess_type(name)[0] or "text/plain"
    response = web.FileResponse(path, headers={"Content-Type": f"{kind}; charset=utf-8"})
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-cache"  # revalidated with its ETag
    return response


# ---- the page's API -------------------------------------------------------------------------


def _json(doc: Any, status: int = 200, etag: str | None = None) -> web.Response:
    response = web.json_response(doc, status=status)
    if etag is not None:
        response.headers["ETag"] = f'"{etag}"'
    return response


@routes.get("/designer/api/me")
@designer_op()
async def me(request: web.Request) -> web.StreamResponse:
    session = request[SESSION]
    user = session.user
    return _json(
        {
            "email": user.email,
            "account": user.account,
            "role": user.role,
            "can_edit": user.can_edit,
            "can_read_statistics": user.can_read_statistics,
            "csrf": session.csrf,
        }
    )


@routes.get("/designer/api/schema")
@designer_op()
async def schema(request: web.Request) -> web.StreamResponse:
    return _json(flow_schema())


@routes.get("/designer/api/flows")
@designer_op()
async def list_flows(request: web.Request) -> web.StreamResponse:
    flows_dir, prompts_dir = flow_api._dirs(request)
    entries = await asyncio.to_thread(flow_api._entries, flows_dir, prompts_dir)
    pending = revisions.drafts(request.config_dict[DB])
    out = []
    for e in entries:
        draft = pending.get(e.name)
        out.append(
            {
                "name": e.name,
                "file": e.path.name,
                "description": e.validation.flow.description if e.validation.flow else "",
                "valid": e.validation.flow is not None,
                "errors": len(e.validation.errors),
                "draft": None
                if draft is None
                else {"author": draft.author, "at": draft.updated_at},
            }
        )
    return _json({"flows": out})


Checked = tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]


def _annotated(text: str, source: str, prompts_dir: Path) -> Checked:
    """The document as JSON (None when it is not YAML) and the validator's problems, each put
    on its step and field by line. Cached by text: an edit's "before" is the last answer's
    "after", and a 200-step flow takes tens of milliseconds to parse twice."""
    return _annotated_cached(text, source, prompts_dir, flow_api.prompts_stamp(prompts_dir))


@functools.lru_cache(maxsize=32)
def _annotated_cached(text: str, source: str, prompts_dir: Path, stamp: tuple[int, ...]) -> Checked:
    res = validate_text(text, source, prompts_dir)
    try:
        doc = yamledit.parsed(text)
    except UserError:
        doc = None
    lines = yamledit.step_lines_of(text) if doc is not None else []
    first_line = dict((name, line) for line, name in lines)
    problems = []
    for p in res.problems:
        step = None
        for first, name in lines:
            if first <= p.line:
                step = name
        field = yamledit.field_on(text, first_line[step], p.line, p.column) if step else None
        problems.append(
            {
                "line": p.line,
                "column": p.column,
                "severity": p.severity,
                "message": p.message,
                "text": str(p),  # exactly what `flexvoice flows validate` prints
                "step": step,
                "field": field,
            }
        )
    shown = yamledit.plain(doc) if isinstance(doc, dict) else None
    return shown, yamledit.steps_view(shown), problems


async def _state(request: web.Request, entry: flow_api.Entry) -> dict[str, Any]:
    """What the page shows for one flow: the working text (the draft, else the file), its
    ETag, problems, and the diff of what publishing would change."""
    conn = request.config_dict[DB]
    _, prompts_dir = flow_api._dirs(request)
    draft = revisions.get_draft(conn, entry.name)
    text = draft.text if draft is not None else entry.text
    doc, steps, problems = await parse_off_loop(
        _annotated, text, f"flows/{entry.path.name}", prompts_dir
    )
    published_doc = _published_doc(entry.text)
    steps_now = (doc or {}).get("steps") if isinstance((doc or {}).get("steps"), dict) else {}
    steps_then = published_doc.get("steps") if isinstance(published_doc.get("steps"), dict) else {}
    return {
        "name": entry.name,
        "file": entry.path.name,
        "text": text,
        "etag": revisions.etag(text),
        "published_etag": revisions.etag(entry.text),
        "draft": None if draft is None else {"author": draft.author, "at": draft.updated_at},
        "doc": doc,
        "steps": steps,
        "problems": problems,
        "errors": sum(1 for p in problems if p["severity"] == "error"),
        "diff": revisions.text_diff(
            entry.text, text, f"flows/{entry.path.name} (published)", "draft"
        ),
        "step_changes": revisions.step_diff(steps_then or {}, steps_now or {}),
    }


@functools.lru_cache(maxsize=16)
def _published_doc(text: str) -> dict[str, Any]:
    doc = yamledit.plain(_safe_load(text))
    return doc if isinstance(doc, dict) else {}


def _safe_load(text: str) -> Any:
    try:
        return yamledit.load(text)
    except UserError:
        return None


def _if_match(request: web.Request) -> str:
    wanted = request.headers.get("If-Match", "").strip().removeprefix("W/").strip('"')
    if not wanted:
        raise ProblemError(
            "invalid-field",
            "send If-Match with the ETag of the version you edited",
            field="If-Match",
        )
    return wanted


def _conflict(request: web.Request, current: dict[str, Any], yours: str | None) -> ProblemError:
    who = current["draft"]["author"] if current["draft"] else "a publication"
    return ProblemError(
        "precondition-failed",
        f"someone else changed this flow while you edited it (last change by {who}); both "
        "versions are shown: keep theirs, or apply your change again on top of it",
        field="If-Match",
        extra={"theirs": current, "yours": yours},
    )


@routes.get("/designer/api/flows/{name}")
@designer_op()
async def get_flow(request: web.Request) -> web.StreamResponse:
    entry = await flow_api._find(request)
    state = await _state(request, entry)
    return _json(state, etag=state["etag"])


async def _body(request: web.Request) -> dict[str, Any]:
    data = parse_json(await read_body(request))
    if not isinstance(data, dict):
        raise ProblemError("invalid-body", "the body must be a JSON object")
    return data


@routes.post("/designer/api/flows/{name}/edit")
@designer_op(edit=True)
async def edit_flow(request: web.Request) -> web.StreamResponse:
    """Apply the page's edits to the working text and keep it as the draft (even with errors:
    the page warns, it does not block)."""
    data = await _body(request)
    ops = data.get("ops")
    if not isinstance(ops, list) or not ops or not all(isinstance(o, dict) for o in ops):
        raise ProblemError("invalid-body", "send {'ops': [...]}, at least one edit", field="ops")
    wanted = _if_match(request)
    entry = await flow_api._find(request)
    conn = request.config_dict[DB]
    # designer_op holds the node's flow write lock: two edits cannot interleave.
    current = await _state(request, entry)
    if current["etag"] != wanted:
        base = data.get("base")
        yours = None
        if isinstance(base, str):
            try:
                yours = await parse_off_loop(yamledit.apply, base, ops)
            except UserError:
                yours = None
        raise _conflict(request, current, yours)
    try:
        text = await parse_off_loop(yamledit.apply, current["text"], ops)
    except UserError as exc:
        raise ProblemError("invalid-field", str(exc), field="ops") from None
    if len(text.encode()) > MAX_BODY_BYTES:
        raise ProblemError("body-too-large", "the flow would be larger than 1 MiB; split it")
    author = request[SESSION].user.email
    if text == entry.text:
        revisions.drop_draft(conn, entry.name)  # back to what is published: no draft
    else:
        revisions.save_draft(conn, entry.name, text, author)
    state = await _state(request, entry)
    return _json(state, etag=state["etag"])


@routes.post("/designer/api/flows/{name}/discard")
@designer_op(edit=True)
async def discard_draft(request: web.Request) -> web.StreamResponse:
    wanted = _if_match(request)
    entry = await flow_api._find(request)
    current = await _state(request, entry)
    if current["etag"] != wanted:
        raise _conflict(request, current, None)
    revisions.drop_draft(request.config_dict[DB], entry.name)
    state = await _state(request, entry)
    return _json(state, etag=state["etag"])


async def _publish(
    request: web.Request, entry: flow_api.Entry, text: str, message: str
) -> revisions.Revision:
    """Validate, write atomically, reload, record the revision. Errors refuse it (422)."""
    _, prompts_dir = flow_api._dirs(request)
    res = await parse_off_loop(validate_text, text, f"flows/{entry.path.name}", prompts_dir)
    if res.flow is None:
        raise flow_api.invalid_flow(res, "text", "the draft")
    if res.flow.name != entry.name:
        raise ProblemError(
            "invalid-flow",
            f"flow: the draft says '{res.flow.name}' but this is flow '{entry.name}'; put the "
            "name back (renaming a flow is done on the node)",
            field="flow",
        )
    conn = request.config_dict[DB]
    author = request[SESSION].user.email
    if not revisions.revisions(conn, entry.name):
        # The history starts with the file as it was, so the first publication can be undone.
        revisions.record(conn, entry.name, entry.text, "file", "as found in the flows folder")
    flow_api._write_atomically(entry.path, text.encode())
    runtime = flow_api._runtime(request)
    if runtime is not None:
        runtime.load_file(entry.path, res)  # validated above: not parsed again on the loop
    revision = revisions.record(conn, entry.name, text, author, message)
    revisions.drop_draft(conn, entry.name)
    log.info("designer.published", flow=entry.name, revision=revision.id, author=author)
    return revision


def _message(data: dict[str, Any], default: str) -> str:
    message = data.get("message", default)
    if not isinstance(message, str) or len(message) > 500:
        raise ProblemError("invalid-field", "message: up to 500 characters", field="message")
    return message.strip() or default


@routes.post("/designer/api/flows/{name}/publish")
@designer_op(edit=True)
async def publish(request: web.Request) -> web.StreamResponse:
    data = await _body(request)
    message = _message(data, "published from the designer")
    wanted = _if_match(request)
    entry = await flow_api._find(request)
    current = await _state(request, entry)
    if current["etag"] != wanted:
        raise _conflict(request, current, None)
    if current["draft"] is None:
        raise ProblemError("conflict", "nothing to publish: the draft is the published flow")
    revision = await _publish(request, entry, current["text"], message)
    entry = await flow_api._find(request)
    state = await _state(request, entry)
    state["revision"] = revision.summary()
    return _json(state, etag=state["etag"])


@routes.get("/designer/api/flows/{name}/revisions")
@designer_op()
async def list_revisions(request: web.Request) -> web.StreamResponse:
    entry = await flow_api._find(request)
    rows = revisions.revisions(request.config_dict[DB], entry.name)
    return _json({"revisions": [r.summary() for r in rows]})


def _revision(request: web.Request, entry: flow_api.Entry) -> revisions.Revision:
    try:
        rev_id = int(request.match_info["rev"])
    except ValueError:
        rev_id = -1
    rev = revisions.get_revision(request.config_dict[DB], entry.name, rev_id)
    if rev is None:
        raise ProblemError(
            "not-found", f"flow '{entry.name}' has no revision {request.match_info['rev']}"
        )
    return rev


@routes.get("/designer/api/flows/{name}/revisions/{rev}")
@designer_op()
async def show_revision(request: web.Request) -> web.StreamResponse:
    entry = await flow_api._find(request)
    rev = _revision(request, entry)
    old = yamledit.plain(_safe_load(rev.text)) or {}
    new = yamledit.plain(_safe_load(entry.text)) or {}
    return _json(
        {
            **rev.summary(),
            "text": rev.text,
            "diff": revisions.text_diff(
                rev.text, entry.text, f"revision {rev.id}", "published now"
            ),
            "step_changes": revisions.step_diff(old.get("steps") or {}, new.get("steps") or {}),
        }
    )


@routes.post("/designer/api/flows/{name}/revisions/{rev}/restore")
@designer_op(edit=True)
async def restore_revision(request: web.Request) -> web.StreamResponse:
    """Publish an old revision's text again, as a new revision (history is kept)."""
    data = await _body(request)
    wanted = _if_match(request)
    entry = await flow_api._find(request)
    rev = _revision(request, entry)
    current = await _state(request, entry)
    if current["etag"] != wanted:
        raise _conflict(request, current, None)
    message = _message(data, f"restored revision {rev.id}")
    revision = await _publish(request, entry, rev.text, message)
    state = await _state(request, await flow_api._find(request))
    state["revision"] = revision.summary()
    return _json(state, etag=state["etag"])


@routes.post("/designer/api/flows/{name}/simulate")
@designer_op()
async def simulate(request: web.Request) -> web.StreamResponse:
    """The simulator over the working version (the draft when there is one)."""
    body = parse_json_body(await read_body(request), flow_api.SimulateRequest)
    entry = await flow_api._find(request)
    _, prompts_dir = flow_api._dirs(request)
    current = await _state(request, entry)
    res = await parse_off_loop(
        validate_text, current["text"], f"flows/{entry.path.name}", prompts_dir
    )
    if res.flow is None:
        raise flow_api.invalid_flow(res, "text", "the draft")
    result = await flow_api.simulate(res.flow, prompts_dir, body)
    return _json(result.model_dump())


def install(app: web.Application) -> None:
    app.router.add_routes(routes)

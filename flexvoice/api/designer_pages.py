"""The designer's pages: log in and out, the app page, its static files (web/dist)."""

from __future__ import annotations

import asyncio
import html
import mimetypes

from aiohttp import web

from flexvoice import users
from flexvoice.accounts import designer_enabled, get_account
from flexvoice.api.designer_session import (
    COOKIE,
    STATIC_FILES,
    WEB_DIST,
    same_origin,
    security_headers,
    session_of,
)
from flexvoice.appkeys import SHARED_DB
from flexvoice.logs import get_logger

log = get_logger(__name__)
routes = web.RouteTableDef()

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
    security_headers(response)
    return response


def _login_page(error: str = "", email: str = "", status: int = 200) -> web.Response:
    box = f'<div class="error" role="alert">{html.escape(error)}</div>' if error else ""
    return _html(LOGIN_PAGE.format(error=box, email=html.escape(email, quote=True)), status)


@routes.get("/designer")
async def designer_root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/designer/")


@routes.get("/designer/")
async def designer_page(request: web.Request) -> web.StreamResponse:
    session = await session_of(request)
    if session is None:
        raise web.HTTPFound("/designer/login")
    if not designer_enabled(request.config_dict[SHARED_DB], session.user.account):
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
    if await session_of(request) is not None:
        raise web.HTTPFound("/designer/")
    return _login_page()


@routes.post("/designer/login")
async def login(request: web.Request) -> web.StreamResponse:
    if not same_origin(request):
        return _login_page("Log in from the designer's own page.", status=403)
    form = await request.post()
    email = str(form.get("email", "")).strip().lower()[:254]
    password = str(form.get("password", ""))[:1024]
    conn = request.config_dict[SHARED_DB]
    # scrypt takes ~50 ms and 16 MiB: off the event loop.
    ok = await asyncio.to_thread(users.check_password, password, users.password_of(conn, email))
    try:
        user = users.record_login(conn, email, ok)
    except users.LoginRefused as exc:
        log.warning("designer.login_refused", email=email, locked=exc.locked)
        return _login_page(str(exc)[0].upper() + str(exc)[1:] + ".", email, status=401)
    account = get_account(request.config_dict[SHARED_DB], user.account)
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
    if token and same_origin(request):
        users.close_session(request.config_dict[SHARED_DB], token)
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

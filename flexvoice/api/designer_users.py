"""The account's people, managed by its administrators from the designer's page: list them,
add one (a password is made and shown once, to pass on), reset a password, unlock after five
wrong passwords. The same functions as `flexvoice users create|reset|unlock`; an administrator
sees and changes only the users of their own account."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from flexvoice import users
from flexvoice.api.designer_session import SESSION, designer_op
from flexvoice.api.designer_session import json_response as _json
from flexvoice.api.framework import parse_json_body, read_body
from flexvoice.api.problems import ProblemError
from flexvoice.appkeys import SHARED_DB
from flexvoice.errors import UserError
from flexvoice.logs import get_logger

log = get_logger(__name__)
routes = web.RouteTableDef()


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=254)
    role: str = Field(description="administrator, manager, agent or analyst")


def _shown(user: users.User) -> dict[str, Any]:
    return {"email": user.email, "role": user.role, "locked": user.locked}


def _mine(request: web.Request) -> users.User:
    """The user named in the URL, when it belongs to the administrator's account."""
    account = request[SESSION].user.account
    email = request.match_info["email"].strip().lower()
    user = users.get_user(request.config_dict[SHARED_DB], email)
    if user is None or user.account != account:
        raise ProblemError("not-found", f"no user {email} in account '{account}'")
    return user


@routes.get("/designer/api/users")
@designer_op(admin=True)
async def list_people(request: web.Request) -> web.StreamResponse:
    account = request[SESSION].user.account
    people = [u for u in users.list_users(request.config_dict[SHARED_DB]) if u.account == account]
    return _json({"users": [_shown(u) for u in people], "roles": list(users.ROLES)})


@routes.post("/designer/api/users")
@designer_op(edit=True, flow_lock=False, admin=True)
async def add_person(request: web.Request) -> web.StreamResponse:
    body = parse_json_body(await read_body(request), NewUser)
    admin = request[SESSION].user
    password = secrets.token_urlsafe(12)
    conn = request.config_dict[SHARED_DB]
    try:
        # scrypt: ~50 ms and 16 MiB, off the event loop.
        user = await asyncio.to_thread(
            users.create_user, conn, body.email, admin.account, body.role, password
        )
    except UserError as exc:
        field = "role" if "role" in str(exc) else "email"
        raise ProblemError("invalid-field", str(exc), field=field) from None
    log.info("designer.user_created", email=user.email, role=user.role, by=admin.email)
    return _json({**_shown(user), "password": password}, 201)


@routes.post("/designer/api/users/{email}/reset")
@designer_op(edit=True, flow_lock=False, admin=True)
async def reset_person(request: web.Request) -> web.StreamResponse:
    user = _mine(request)
    password = secrets.token_urlsafe(12)
    await asyncio.to_thread(
        users.reset_password, request.config_dict[SHARED_DB], user.email, password
    )
    log.info("designer.user_reset", email=user.email, by=request[SESSION].user.email)
    return _json({**_shown(user), "locked": False, "password": password})


@routes.post("/designer/api/users/{email}/unlock")
@designer_op(edit=True, flow_lock=False, admin=True)
async def unlock_person(request: web.Request) -> web.StreamResponse:
    user = _mine(request)
    users.unlock(request.config_dict[SHARED_DB], user.email)
    log.info("designer.user_unlocked", email=user.email, by=request[SESSION].user.email)
    return _json({**_shown(user), "locked": False})

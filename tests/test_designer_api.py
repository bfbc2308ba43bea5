"""The designer's server side over HTTP against the real node app: users, login and lockout,
session cookies and CSRF, drafts, publishing with revisions, If-Match conflicts, simulate,
and the designer option's usage periods."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flexvoice import users
from flexvoice.accounts import create_account, designer_enabled, set_designer
from flexvoice.flows import revisions, yamledit
from flexvoice.storage.sqlite import connect
from tests.apikit import problem
from tests.conftest import REPO, run_cli
from tests.designerkit import (
    ANALYST,
    MANAGER,
    MANAGER2,
    NO_DESIGNER,
    Browser,
    Designer,
    running_designer,
)

pytestmark = pytest.mark.xdist_group("designer")


@pytest.fixture
async def d(tmp_path: Path) -> AsyncIterator[Designer]:
    async with running_designer(tmp_path) as designer:
        yield designer


@pytest.fixture
async def tab(d: Designer) -> AsyncIterator[Browser]:
    b = Browser(d)
    yield b
    await b.close()


def test_scrypt_hashes_and_checks() -> None:
    stored = users.hash_password("a long passphrase")
    assert stored.startswith("scrypt$16384$8$1$")
    assert users.check_password("a long passphrase", stored)
    assert not users.check_password("a long passphrase!", stored)
    assert not users.check_password("x", "garbage")


async def test_login_sets_a_strict_httponly_cookie_and_opens_the_page(
    d: Designer, tab: Browser
) -> None:
    r = await tab.s.get(d.url + "/designer/", allow_redirects=False)
    assert r.status == 302 and r.headers["Location"] == "/designer/login"
    r = await tab.login(MANAGER)
    assert r.status == 303 and r.headers["Location"] == "/designer/"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/designer" in cookie
    r = await tab.s.get(d.url + "/designer/")
    assert r.status == 200 and "/designer/static/designer.js" in await r.text()
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    me = await (await tab.get("/me")).json()
    assert me["email"] == MANAGER and me["role"] == "manager" and me["can_edit"] is True


async def test_five_wrong_passwords_lock_the_user_until_unlocked(d: Designer, tab: Browser) -> None:
    for _ in range(4):
        r = await tab.login(MANAGER, "wrong password")
        assert r.status == 401
        text = await r.text()
        assert "wrong e-mail or password" in text.lower()
    assert "1 more wrong attempt" in text
    r = await tab.login(MANAGER, "wrong password")
    assert r.status == 401 and "locked after 5 wrong passwords" in await r.text()
    # Now even the right password is refused, until an administrator unlocks.
    r = await tab.login(MANAGER)
    assert r.status == 401 and "locked" in await r.text()
    assert users.get_user(d.conn, MANAGER).locked  # type: ignore[union-attr]
    users.unlock(d.conn, MANAGER)
    assert (await tab.login(MANAGER)).status == 303
    # An unknown e-mail says the same as a wrong password (no enumeration).
    r = await tab.login("nobody@bakery.be")
    assert r.status == 401 and "wrong e-mail or password" in (await r.text()).lower()


async def test_every_change_needs_the_csrf_token_and_the_same_origin(
    d: Designer, tab: Browser
) -> None:
    await tab.login(MANAGER)
    etag = (await tab.state())["etag"]
    op = {"ops": [{"op": "set", "step": "staff", "path": ["on_busy"], "value": "shop"}]}
    r = await tab.post("/flows/bakery-main/edit", op, etag, csrf="")
    await problem(r, 403, "forbidden")
    r = await tab.post("/flows/bakery-main/edit", op, etag, csrf="forged")
    await problem(r, 403, "forbidden")
    r = await tab.s.post(
        d.url + "/designer/api/flows/bakery-main/edit",
        json=op,
        headers={"X-CSRF-Token": tab.csrf, "Origin": "http://evil.example", "If-Match": etag},
    )
    await problem(r, 403, "forbidden")
    r = await tab.post("/flows/bakery-main/edit", op, etag)
    assert r.status == 200, await r.text()
    # Without a session nothing is served.
    other = Browser(d)
    try:
        await problem(await other.get("/flows"), 401, "unauthenticated")
    finally:
        await other.close()


async def test_roles_and_the_designer_option(d: Designer, tab: Browser) -> None:
    await tab.login(ANALYST)
    state = await tab.state()
    r = await tab.post(
        "/flows/bakery-main/edit",
        {"ops": [{"op": "delete_step", "step": "shop"}]},
        state["etag"],
    )
    doc = await problem(r, 403, "forbidden")
    assert "analyst" in doc["detail"]
    # An analyst may try flows.
    r = await tab.post("/flows/bakery-main/simulate", {})
    assert r.status == 200, await r.text()
    other = Browser(d)
    try:
        assert (await other.login(NO_DESIGNER)).status == 303
        r = await other.s.get(d.url + "/designer/")
        assert r.status == 403 and "not switched on" in await r.text()
        await problem(await other.get("/flows"), 403, "forbidden")
    finally:
        await other.close()


async def test_edit_keeps_a_draft_then_publish_writes_the_file_with_its_comments(
    d: Designer, tab: Browser
) -> None:
    await tab.login(MANAGER)
    original = (d.flows_dir / "bakery.yaml").read_text()
    state = await tab.state()
    assert state["draft"] is None and state["text"] == original and state["errors"] == 0
    r = await tab.post(
        "/flows/bakery-main/edit",
        {"ops": [{"op": "set", "step": "staff", "path": ["on_busy"], "value": "shop"}]},
        state["etag"],
    )
    assert r.status == 200, await r.text()
    state = await r.json()
    assert r.headers["ETag"] == f'"{state["etag"]}"'
    assert state["draft"]["author"] == MANAGER
    assert "+      on_busy: shop" in state["diff"]
    assert state["step_changes"] == {"added": [], "removed": [], "changed": ["staff"]}
    assert (d.flows_dir / "bakery.yaml").read_text() == original  # a draft only
    r = await tab.post("/flows/bakery-main/publish", {"message": "busy staff: shop info"}, "x")
    await problem(r, 412, "precondition-failed", "If-Match")
    r = await tab.post(
        "/flows/bakery-main/publish", {"message": "busy staff: shop info"}, state["etag"]
    )
    assert r.status == 200, await r.text()
    published = (d.flows_dir / "bakery.yaml").read_text()
    assert published == original.replace(
        "      on_failed: voicemail\n  closed:",
        "      on_failed: voicemail\n      on_busy: shop\n  closed:",
    )
    assert "# or simultaneous" in published and "# the baker declined" in published
    assert d.runtime.flows["bakery-main"].digest == revisions.etag(published)
    revs = await (await tab.get("/flows/bakery-main/revisions")).json()
    assert [(x["author"], x["message"]) for x in revs["revisions"]] == [
        (MANAGER, "busy staff: shop info"),
        ("file", "as found in the flows folder"),
    ]
    # The same history through the REST API.
    r = await d.api.client.get(
        "/v1/flows/bakery-main/revisions", headers=d.api.auth("acme:developer")
    )
    assert [x["id"] for x in (await r.json())["revisions"]] == [x["id"] for x in revs["revisions"]]
    # Restore the first revision: a new revision, the file as it was.
    first = revs["revisions"][-1]["id"]
    shown = await (await tab.get(f"/flows/bakery-main/revisions/{first}")).json()
    assert shown["step_changes"]["changed"] == ["staff"] and "on_busy: shop" in shown["diff"]
    state = await tab.state()
    r = await tab.post(f"/flows/bakery-main/revisions/{first}/restore", {}, state["etag"])
    assert r.status == 200, await r.text()
    assert (d.flows_dir / "bakery.yaml").read_text() == original
    revs = await (await tab.get("/flows/bakery-main/revisions")).json()
    assert revs["revisions"][0]["message"] == f"restored revision {first}"


@pytest.mark.process  # runs the CLI
async def test_errors_are_shown_on_their_step_and_block_only_publishing(
    d: Designer, tab: Browser
) -> None:
    await tab.login(MANAGER)
    state = await tab.state()
    r = await tab.post(
        "/flows/bakery-main/edit",
        {"ops": [{"op": "set", "step": "orders", "path": ["ring_timeout"], "value": "soon"}]},
        state["etag"],
    )
    assert r.status == 200, await r.text()
    state = await r.json()
    assert state["errors"] == 1
    (p,) = [p for p in state["problems"] if p["severity"] == "error"]
    assert p["step"] == "orders" and p["field"] == "ring_timeout"
    # The same text `flexvoice flows validate` prints for that file.
    draft = d.flows_dir.parent / "draft.yaml"
    draft.write_text(state["text"])
    cli = run_cli("flows", "validate", "--prompts", str(REPO / "ivr_prompts"), str(draft))
    assert p["message"] in cli.stdout and f":{p['line']}:{p['column']}:" in cli.stdout
    r = await tab.post("/flows/bakery-main/publish", {"message": "x"}, state["etag"])
    doc = await problem(r, 422, "invalid-flow")
    assert doc["errors"][0]["line"] == p["line"]
    # Undo through the page's replace: back to the file, no draft left.
    original = (d.flows_dir / "bakery.yaml").read_text()
    r = await tab.post(
        "/flows/bakery-main/edit", {"ops": [{"op": "replace", "text": original}]}, state["etag"]
    )
    state = await r.json()
    assert state["draft"] is None and state["errors"] == 0 and state["diff"] == ""


async def test_a_second_editor_gets_412_with_both_versions(d: Designer, tab: Browser) -> None:
    await tab.login(MANAGER)
    second = Browser(d)
    try:
        await second.login(MANAGER2)
        mine = await tab.state()
        theirs = await second.state()
        r = await second.post(
            "/flows/bakery-main/edit",
            {"ops": [{"op": "rename_step", "step": "shop", "to": "shop_info"}]},
            theirs["etag"],
        )
        assert r.status == 200
        # The edit names the text it was made on by its ETag only: the node has it.
        ops = [{"op": "set", "step": "staff", "path": ["on_busy"], "value": "closed"}]
        r = await tab.post("/flows/bakery-main/edit", {"ops": ops}, mine["etag"])
        doc = await problem(r, 412, "precondition-failed", "If-Match")
        assert MANAGER2 in doc["detail"] and "base_needed" not in doc
        theirs_text = doc["theirs"]["text"]
        assert "shop_info:" in theirs_text and "on_busy: closed" not in theirs_text
        assert "on_busy: closed" in doc["yours"] and "shop_info:" not in doc["yours"]
        # A text the node never saw (an edit the page made and the node forgot): it asks
        # for the text, and with it shows yours.
        unknown = mine["text"].replace("# ", "#  ", 1)
        stale = revisions.etag(unknown)
        r = await tab.post("/flows/bakery-main/edit", {"ops": ops}, stale)
        doc = await problem(r, 412, "precondition-failed", "If-Match")
        assert doc["base_needed"] is True and doc["yours"] is None
        r = await tab.post("/flows/bakery-main/edit", {"ops": ops, "base": unknown}, stale)
        doc = await problem(r, 412, "precondition-failed", "If-Match")
        assert "on_busy: closed" in doc["yours"] and "#  " in doc["yours"]
        # Nothing was overwritten.
        assert "shop_info:" in (await tab.state())["text"]
    finally:
        await second.close()


async def test_rename_and_delete_follow_references() -> None:
    text = (REPO / "flows" / "bakery.yaml").read_text()
    renamed = yamledit.apply(text, [{"op": "rename_step", "step": "voicemail", "to": "messages"}])
    assert "voicemail" not in renamed.split("steps:")[1] and renamed.count("messages") == 6
    renamed = yamledit.apply(text, [{"op": "rename_step", "step": "check_hours", "to": "hours"}])
    assert "start: hours\n" in renamed
    deleted = yamledit.apply(text, [{"op": "delete_step", "step": "shop"}])
    assert '"2": shop' not in deleted and "  shop:" not in deleted
    # Every demo flow survives a load and dump byte for byte.
    for path in sorted((REPO / "flows").glob("*.yaml")):
        source = path.read_text()
        assert yamledit.dump(yamledit.load(source)) == source, path.name


async def test_simulate_endpoint_takes_the_closed_path_on_a_sunday(d: Designer) -> None:
    auth = d.api.auth("acme:developer")
    r = await d.api.client.post(
        "/v1/flows/bakery-main/simulate", json={"at": "2026-12-06T11:00:00+01:00"}, headers=auth
    )
    assert r.status == 200, await r.text()
    doc = await r.json()
    assert doc["path"][:3] == ["check_hours", "closed", "voicemail"]
    assert "closed" in doc["trace"][0]["why"] or "closed" in json.dumps(doc["trace"][:2])
    assert "check_hours" in doc["transcript"]
    r = await d.api.client.post(
        "/v1/flows/bakery-main/simulate",
        json={"at": "2026-12-07T10:00:00+01:00", "digits": ["1"], "dial": ["busy", "busy"]},
        headers=auth,
    )
    doc = await r.json()
    assert doc["path"][:4] == ["check_hours", "menu", "orders", "voicemail"]
    r = await d.api.client.post(
        "/v1/flows/bakery-main/simulate", json={"digits": ["1x"]}, headers=auth
    )
    await problem(r, 422, "invalid-field")
    r = await d.api.client.post(
        "/v1/flows/bakery-main/simulate", json={"at": "2026-12-06T11:00:00"}, headers=auth
    )
    await problem(r, 422, "invalid-field")


async def test_put_honours_if_match_and_records_a_revision(d: Designer) -> None:
    auth = d.api.auth("acme:developer")
    r = await d.api.client.get("/v1/flows/bakery-main", headers=auth)
    etag = r.headers["ETag"]
    text = (await r.text()).replace("Main line of the bakery", "The bakery")
    yaml = {"Content-Type": "application/yaml", **auth}
    r = await d.api.client.put(
        "/v1/flows/bakery-main", data=text, headers={**yaml, "If-Match": '"stale"'}
    )
    await problem(r, 412, "precondition-failed", "If-Match")
    r = await d.api.client.put(
        "/v1/flows/bakery-main", data=text, headers={**yaml, "If-Match": etag}
    )
    assert r.status == 200, await r.text()
    (rev,) = revisions.revisions(d.conn, "bakery-main")
    assert rev.message == "PUT /v1/flows" and rev.author.startswith("key ")


@pytest.mark.process  # runs the CLI
def test_designer_option_opens_and_closes_one_usage_period(tmp_path: Path) -> None:
    db = tmp_path / "flexvoice.db"
    conn = connect(db)
    create_account(conn, "bakery", "flexio-payu")
    conn.close()
    env = {"FLEXVOICE_CONFIG": str(REPO / "flexvoice.yaml")}
    r = run_cli("accounts", "set", "bakery", "--designer", "on", "--db", str(db), **env)
    assert r.returncode == 0, r.stderr
    assert "designer is on" in r.stdout
    r = run_cli("accounts", "set", "bakery", "--designer", "on", "--db", str(db), **env)
    assert "already on" in r.stdout
    conn = connect(db)
    assert designer_enabled(conn, "bakery")
    rows = conn.execute("SELECT id, payload FROM usage_events WHERE kind = 'designer'").fetchall()
    assert len(rows) == 1 and json.loads(rows[0][1])["active_to"] is None
    conn.close()
    r = run_cli("accounts", "set", "bakery", "--designer", "off", "--db", str(db), **env)
    assert r.returncode == 0, r.stderr
    conn = connect(db)
    closed = conn.execute("SELECT id, payload FROM usage_events WHERE kind = 'designer'").fetchall()
    # One period: the same event id, now with its end.
    assert len(closed) == 1 and closed[0][0] == rows[0][0]
    assert json.loads(closed[0][1])["active_to"] is not None
    assert not designer_enabled(conn, "bakery")
    r = run_cli("accounts", "set", "nobody", "--designer", "on", "--db", str(db), **env)
    assert r.returncode != 0 and "no account 'nobody'" in r.stderr


@pytest.mark.process  # runs the CLI
def test_users_cli_create_reset_unlock(tmp_path: Path) -> None:
    db = tmp_path / "flexvoice.db"
    conn = connect(db)
    create_account(conn, "bakery", "flexio-payu")
    set_designer(conn, "bakery", True)
    conn.close()
    r = run_cli(
        "users", "create", "Anna@Bakery.be", "--account", "bakery", "--role", "manager",
        "--generate", "--db", str(db),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "created user anna@bakery.be" in r.stdout and "password: " in r.stdout
    r = run_cli(
        "users", "create", "bob@bakery.be", "--account", "bakery", "--role", "boss",
        "--generate", "--db", str(db),
    )  # fmt: skip
    assert r.returncode != 0 and "invalid choice: 'boss'" in r.stderr
    conn = connect(db)
    for _ in range(5):
        with pytest.raises(users.LoginRefused):
            users.record_login(conn, "anna@bakery.be", False)
    assert users.get_user(conn, "anna@bakery.be").locked  # type: ignore[union-attr]
    r = run_cli("users", "unlock", "anna@bakery.be", "--db", str(db))
    assert r.returncode == 0 and not users.get_user(conn, "anna@bakery.be").locked  # type: ignore[union-attr]
    r = run_cli("users", "list", "--db", str(db))
    assert "anna@bakery.be  account=bakery  role=manager  active" in r.stdout
    r = run_cli("users", "reset", "ghost@bakery.be", "--generate", "--db", str(db))
    assert r.returncode != 0 and "no user ghost@bakery.be" in r.stderr

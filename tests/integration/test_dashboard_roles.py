"""The dashboard follows the role as the API does: every page × role (a person's session for
each role and the break-glass password): a page opens or is a 403; a viewer's pages carry no
write form at all, and a viewer's post is refused; a team admin's navigation lists only their
pages, the overview takes them to their first page, and their pages carry only the forms they
may post; an admin sees no owner-only form. People and Tokens pages create and delete."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from starlette.requests import Request

from omniroute.settings import Settings
from omniroute_admin import access, sessions
from omniroute_admin.app import create_app
from omniroute_admin.dashboard import roles
from tests.integration.admin_app import Admin, running_admin

pytestmark = pytest.mark.xdist_group("dashboard_roles")

ROLES: tuple[access.Role, ...] = ("owner", "admin", "team_admin", "viewer")
_POST_FORM = re.compile(r'<form\b[^>]*method="post"[^>]*>', re.IGNORECASE)
_ACTION = re.compile(r'action="([^"]*)"')


def _pages() -> list[str]:
    """Every dashboard page (GET, no path parameter) except the login page."""
    app = create_app(Settings())
    return sorted({route.path for route, method in access.operations(app)
                   if route.path.startswith("/dashboard") and method == "GET" and "{" not in route.path
                   and route.path not in ("/dashboard/login", "/dashboard/")})


PAGES = _pages()
# The API reference is public (no configuration in it), the same for everyone.
PUBLIC_PAGES = {"/dashboard/docs"}
TEAM_ADMIN_PAGES = PUBLIC_PAGES | {"/dashboard", "/dashboard/keys", "/dashboard/teams", "/dashboard/usage",
                    "/dashboard/usage.csv", "/dashboard/logs", "/dashboard/audit"}


@dataclass
class World:
    admin: Admin
    clients: dict[str, httpx.AsyncClient]


def _post_actions(html: str, path: str) -> list[str]:
    actions = []
    for tag in _POST_FORM.findall(html):
        found = _ACTION.search(tag)
        actions.append(found.group(1) if found and found.group(1) else path)
    return [action for action in actions if action != "/dashboard/logout"]


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with running_admin(tmp_path_factory.mktemp("dashroles")) as admin:
        assert (await admin.client.post("/api/teams", json={"id": "alpha", "name": "alpha"})).status_code == 201
        assert (await admin.client.post("/api/keys", json={"name": "alpha-key", "team": "alpha"})).status_code == 201
        assert (await admin.client.post("/api/keys", json={"name": "other-key"})).status_code == 201
        state = admin.app.state.admin
        clients = {"password": admin.client}
        role: access.Role
        for role in ROLES:
            body = {"email": f"{role}@example.com", "role": role,
                    "team_ids": ["alpha"] if role == "team_admin" else []}
            person = (await admin.client.post("/api/people", json=body)).json()
            principal = access.Principal(kind="person", actor=f"person:{role}@example.com", role=role,
                                         person_id=person["id"])
            request = Request({"type": "http", "headers": [], "client": ("127.0.0.1", 1)})
            issued = await sessions.start_session(state, request, principal)
            client = admin.anonymous()
            client.cookies.set(sessions.COOKIE, issued["token"])
            client.headers["x-test-csrf"] = issued["csrf"]
            clients[role] = client
        try:
            yield World(admin, clients)
        finally:
            for role in ROLES:
                await clients[role].aclose()


def test_the_walk_covers_the_pages() -> None:
    assert len(PAGES) >= 18 and {"/dashboard/people", "/dashboard/tokens"} <= set(PAGES)


@pytest.mark.parametrize("role", [*ROLES, "password"])
@pytest.mark.parametrize("path", PAGES)
async def test_page_by_role(world: World, role: str, path: str) -> None:
    client = world.clients[role]
    answer = await client.get(path, follow_redirects=False)
    if role == "team_admin" and path not in TEAM_ADMIN_PAGES:
        assert answer.status_code == 403, answer.text[:300]
        return
    if role == "team_admin" and path == "/dashboard":
        assert (answer.status_code, answer.headers["location"]) == (303, "/dashboard/teams")
        return
    assert answer.status_code == 200, (role, path, answer.status_code, answer.text[:300])
    if not answer.headers["content-type"].startswith("text/html"):
        return
    actions = _post_actions(answer.text, path)
    if role == "viewer":
        assert actions == [], actions          # no write form at all
    if role in ("admin", "team_admin", "viewer"):
        principal = access.Principal(kind="person", actor="x", role=role,  # type: ignore[arg-type]
                                     team_ids=frozenset({"alpha"}) if role == "team_admin" else frozenset())
        for action in actions:
            assert roles.may(principal, world.admin.app, "POST", action), (role, path, action)
    nav = set(re.findall(r'<li><a href="(/dashboard[^"]*)"', answer.text))
    if role == "team_admin" and path not in PUBLIC_PAGES:
        assert nav <= TEAM_ADMIN_PAGES | {"/dashboard/docs"}, nav
        assert {"/dashboard/keys", "/dashboard/teams", "/dashboard/audit"} <= nav
    if role in ("owner", "password") and path == "/dashboard/settings":
        assert "/dashboard/settings/password" in actions
    if path == "/dashboard/settings":   # export links: admin reads, as GET /api/db-backups/export
        assert ("/api/db-backups/export" in answer.text) == (role != "viewer")
    if role == "admin" and path == "/dashboard/settings":
        assert "/dashboard/settings/password" not in actions and "/dashboard/settings/general" in actions


async def test_a_viewers_posts_are_refused(world: World) -> None:
    viewer = world.clients["viewer"]
    csrf = viewer.headers["x-test-csrf"]
    for action in ("/dashboard/providers", "/dashboard/keys", "/dashboard/tokens", "/dashboard/people",
                   "/dashboard/settings/general", "/dashboard/backups/restore", "/dashboard/cache/clear"):
        answer = await viewer.post(action, data={"csrf_token": csrf, "name": "x"})
        assert answer.status_code == 403, (action, answer.status_code)
        assert "you are viewer" in answer.text


async def test_a_team_admin_sees_and_manages_their_teams_keys_only(world: World) -> None:
    team_admin = world.clients["team_admin"]
    page = await team_admin.get("/dashboard/keys")
    assert "alpha-key" in page.text and "other-key" not in page.text
    csrf = team_admin.headers["x-test-csrf"]
    made = await team_admin.post("/dashboard/keys", data={"csrf_token": csrf, "name": "ta-key", "team": "alpha"})
    assert made.status_code == 201 and "ta-key" in made.text
    tokens = await team_admin.post("/dashboard/tokens", data={"csrf_token": csrf, "name": "nope", "role": "viewer"})
    assert tokens.status_code == 403


async def test_people_and_tokens_pages_create_and_delete(world: World) -> None:
    client = world.admin.client
    csrf = client.headers["x-csrf-token"]
    added = await client.post("/dashboard/people", data={"csrf_token": csrf, "email": "new@example.com",
                                                         "role": "team_admin", "team_ids": "alpha"})
    assert added.status_code == 303
    page = await client.get("/dashboard/people")
    assert "new@example.com" in page.text and "added as team_admin" in page.text
    person_id = next(p["id"] for p in (await client.get("/api/people")).json()["people"]
                     if p["email"] == "new@example.com")
    refused = await client.post("/dashboard/people", data={"csrf_token": csrf, "email": "bad@example.com",
                                                           "role": "team_admin", "team_ids": "nowhere"})
    assert "No such team: nowhere" in (await client.get(refused.headers["location"])).text
    removed = await client.post(f"/dashboard/people/{person_id}/delete", data={"csrf_token": csrf})
    assert removed.status_code == 303
    assert "new@example.com" not in (await client.get("/dashboard/people")).text

    created = await client.post("/dashboard/tokens", data={"csrf_token": csrf, "name": "dash-ci",
                                                           "role": "viewer"})
    assert created.status_code == 201
    secret = re.search(r'id="new-token-value" class="secret">([^<]+)<', created.text)
    assert secret and secret.group(1).startswith("omr_mt_")
    async with world.admin.anonymous() as bot:
        bot.headers["authorization"] = f"Bearer {secret.group(1)}"
        assert (await bot.get("/api/providers")).status_code == 200
        assert (await bot.put("/api/settings", json={})).status_code == 403
        token_id = next(t["id"] for t in (await client.get("/api/tokens")).json()["tokens"]
                        if t["name"] == "dash-ci")
        listed = await client.get("/dashboard/tokens")
        assert secret.group(1) not in listed.text and "dash-ci" in listed.text
        revoked = await client.post(f"/dashboard/tokens/{token_id}/delete", data={"csrf_token": csrf})
        assert revoked.status_code == 303
        assert (await bot.get("/api/providers")).status_code == 401


RANK = {"viewer": 0, "team_admin": 1, "admin": 2, "owner": 3}
UNGATED_PAGES = {"/dashboard/login", "/dashboard/logout", "/dashboard/static/{name}", "/dashboard/docs"}


def _dashboard_operations() -> list[tuple[str, str, str, bool]]:
    """Every dashboard route and method but the ungated ones: (method, path, role, team scoped)."""
    app = create_app(Settings())
    return sorted({(method, route.path, access.required_role(route, method), access.is_team_scoped(route))
                   for route, method in access.operations(app)
                   if route.path.startswith("/dashboard") and route.path not in UNGATED_PAGES
                   and method in ("GET", "POST")})


@pytest.mark.parametrize("role", ["admin", "team_admin", "viewer"])
async def test_every_dashboard_route_refuses_the_roles_it_does_not_admit(world: World, role: str) -> None:
    """Forms included: hiding a form is a courtesy, the POST itself is refused (403 page)."""
    client = world.clients[role]
    refused = 0
    for method, path, needed, scoped in _dashboard_operations():
        allowed = (scoped and RANK[needed] <= RANK["team_admin"]) if role == "team_admin" \
            else RANK[role] >= RANK[needed]
        if allowed:
            continue
        concrete = re.sub(r"\{[^}]+\}", "x1", path)
        answer = await client.request(method, concrete, data={"csrf_token": client.headers["x-test-csrf"]},
                                      follow_redirects=False) if method == "POST" else \
            await client.get(concrete, follow_redirects=False)
        if role == "team_admin" and path in ("/dashboard", "/dashboard/"):
            assert answer.status_code == 303
            continue
        assert answer.status_code == 403, (role, method, path, answer.status_code)
        refused += 1
    assert refused >= {"admin": 5, "team_admin": 40, "viewer": 30}[role], refused

"""Every management route × every role: the role each operation documents in OpenAPI
(`x-required-role`, `x-team-scoped`) is the one enforced, for management tokens of each role and
for the break-glass password session; the role check comes before the body is validated (a
refused caller gets 403 for `{}`, never 400); the decisions of the matrix (docs/API.md) hold; and
a team admin reaching another team's objects gets 404, not 403."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from omniroute.settings import Settings
from omniroute_admin import access, sessions
from omniroute_admin.app import create_app
from tests.integration.admin_app import Admin, running_admin

pytestmark = pytest.mark.xdist_group("role_matrix")

RANK = {"viewer": 0, "team_admin": 1, "admin": 2, "owner": 3}
CALLERS = ("owner", "admin", "team_admin", "viewer", "password")
# Without a session on purpose (tests/reliability/test_security.py: PUBLIC), or with the sync
# peer's own token.
UNGATED = {"/api/auth/login", "/api/auth/logout", "/api/init", "/api/cloud/config", "/api/openapi.json",
           "/docs", "/healthz", "/readyz", "/api/auth/oidc/login", "/api/auth/oidc/callback"}
# Bodies that get an allowed caller past the role check without changing anything that the
# rest of the walk depends on (every other write gets `{}`, which its validation refuses or
# which names ids that do not exist).
HARMLESS: dict[tuple[str, str], Any] = {
    ("POST", "/api/restart"): {"services": ["no-such-service"]},
    ("POST", "/api/shutdown"): {"services": ["no-such-service"]},
    ("POST", "/api/sync/initialize"): {"rotate": "not-a-bool"},
    ("POST", "/api/db-backups/import"): {"not": "an archive"},
    ("DELETE", "/api/policies"): {},
}
# The decisions of the matrix (docs/API.md "Roles"), stated here on their own so that a route
# that loses its declaration fails: (method, path) → (role, team scoped).
DECIDED: dict[tuple[str, str], tuple[str, bool]] = {
    ("POST", "/api/db-backups"): ("owner", False),            # restore replaces everything
    ("POST", "/api/db-backups/import"): ("owner", False),
    ("PUT", "/api/settings/require-login"): ("owner", False),  # off = everyone is an owner
    ("PUT", "/api/auth/password"): ("owner", False),           # the break-glass account
    ("POST", "/api/sync/initialize"): ("owner", False),
    ("PUT", "/api/sync/cloud"): ("owner", False),
    ("POST", "/api/sync/cloud"): ("owner", False),
    ("GET", "/api/sessions"): ("admin", False),                # who is logged in, from where
    ("GET", "/api/db-backups/export"): ("admin", False),       # archives carry credentials
    ("GET", "/api/db-backups/exportAll"): ("admin", False),
    ("GET", "/api/oauth/{provider_id}/{action}"): ("admin", False),
    ("GET", "/api/people"): ("viewer", False),
    ("POST", "/api/people"): ("admin", False),
    ("PUT", "/api/people/{person_id}"): ("admin", False),
    ("DELETE", "/api/people/{person_id}"): ("admin", False),
    ("GET", "/api/tokens"): ("viewer", False),
    ("POST", "/api/tokens"): ("admin", False),
    ("DELETE", "/api/tokens/{token_id}"): ("admin", False),
    ("GET", "/api/providers"): ("viewer", False),              # platform-wide: not team admins
    ("PUT", "/api/settings"): ("admin", False),
    ("GET", "/api/audit"): ("viewer", True),
    ("GET", "/api/compliance/audit-log"): ("viewer", True),
    ("GET", "/api/usage/history"): ("viewer", True),
    ("GET", "/api/usage/logs"): ("viewer", True),
    ("GET", "/api/usage/request-logs"): ("viewer", True),
    ("GET", "/api/usage/request-logs/{request_id}"): ("viewer", True),
    ("GET", "/api/usage/budget"): ("viewer", True),
    ("POST", "/api/usage/budget"): ("team_admin", True),
    ("GET", "/api/keys"): ("viewer", True),
    ("POST", "/api/keys"): ("team_admin", True),
    ("GET", "/api/mcp/servers"): ("viewer", False),           # platform-wide, like providers
    ("GET", "/api/mcp/servers/{server_id}"): ("viewer", False),
    ("POST", "/api/mcp/servers"): ("admin", False),
    ("PUT", "/api/mcp/servers/{server_id}"): ("admin", False),
    ("PATCH", "/api/mcp/servers/{server_id}"): ("admin", False),
    ("DELETE", "/api/mcp/servers/{server_id}"): ("admin", False),
    ("GET", "/api/mcp/calls"): ("viewer", True),
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    role: str
    team_scoped: bool

    def allows(self, caller: str) -> bool:
        """The rule docs/API.md states, written out on its own."""
        role = "owner" if caller == "password" else caller
        if role == "team_admin":
            return self.team_scoped and RANK[self.role] <= RANK["team_admin"]
        return RANK[role] >= RANK[self.role]


def _operations() -> list[Operation]:
    """Every (method, route) of the admin app under /api (app.routes, nested routers included),
    with the role its OpenAPI operation documents."""
    app = create_app(Settings())
    document = app.openapi()
    found: list[Operation] = []
    for route, method in access.operations(app):
        if not route.path.startswith("/api/") or route.path_format in UNGATED or method == "HEAD":
            continue
        operation = document["paths"][route.path_format][method.lower()]
        found.append(Operation(method, route.path_format, operation[access.ROLE_EXTENSION],
                               bool(operation[access.TEAM_SCOPE_EXTENSION])))
    return found


OPERATIONS = _operations()


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


@dataclass
class World:
    admin: Admin
    clients: dict[str, httpx.AsyncClient]
    other_team_key: str


async def _token(admin: Admin, name: str, role: str, team_id: str | None = None) -> str:
    answer = await admin.client.post("/api/tokens", json={"name": name, "role": role, "team_id": team_id})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with running_admin(tmp_path_factory.mktemp("roles")) as admin:
        for team in ("alpha", "beta"):
            created = await admin.client.post("/api/teams", json={"id": team, "name": team})
            assert created.status_code == 201, created.text
        key = await admin.client.post("/api/keys", json={"name": "beta-ci", "team": "beta"})
        assert key.status_code == 201, key.text
        clients: dict[str, httpx.AsyncClient] = {}
        for role in ("owner", "admin", "team_admin", "viewer"):
            secret = await _token(admin, f"matrix-{role}", role, "alpha" if role == "team_admin" else None)
            client = admin.anonymous()
            client.headers["authorization"] = f"Bearer {secret}"
            clients[role] = client
        clients["password"] = admin.client
        try:
            yield World(admin=admin, clients=clients, other_team_key=str(key.json()["id"]))
        finally:
            for role, client in clients.items():
                if role != "password":
                    await client.aclose()


def test_the_walk_covers_every_management_route() -> None:
    """Nothing under /api escapes: every gated operation documents a role, and the matrix's
    decisions are what the document says."""
    assert len(OPERATIONS) >= 120
    documented = {(op.method, op.path): (op.role, op.team_scoped) for op in OPERATIONS}
    for (method, path), decided in DECIDED.items():
        assert documented.get((method, path)) == decided, (method, path, documented.get((method, path)))
    assert {op.role for op in OPERATIONS} == {"owner", "admin", "team_admin", "viewer"}


def test_every_operation_says_its_role_in_openapi() -> None:
    document = create_app(Settings()).openapi()
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            assert access.ROLE_EXTENSION in operation, (method, path)
            assert operation["description"].startswith("Required role: "), (method, path)
    paths = document["paths"]
    assert paths["/api/cloud/config"]["put"][access.ROLE_EXTENSION] == "sync-peer"
    assert paths["/api/auth/login"]["post"][access.ROLE_EXTENSION] == "none"
    assert paths["/api/db-backups"]["post"][access.ROLE_EXTENSION] == "owner"
    assert paths["/api/db-backups"]["post"]["description"].startswith("Required role: owner (owners only).")
    assert paths["/api/usage/logs"]["get"][access.TEAM_SCOPE_EXTENSION] is True


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: f"{op.method} {op.path}")
async def test_route_by_role(world: World, caller: str, operation: Operation) -> None:
    client = world.clients[caller]
    body = HARMLESS.get((operation.method, operation.path), {})
    kwargs: dict[str, Any] = {} if operation.method in ("GET", "DELETE") else {"json": body}
    answer = await client.request(operation.method, concrete(operation.path), **kwargs)
    if operation.allows(caller):
        assert answer.status_code not in (401, 403), (caller, answer.status_code, answer.text[:300])
        assert answer.status_code < 500, (caller, answer.status_code, answer.text[:300])
    else:
        # Refused before the body is validated: `{}` would be a 400 for most of these.
        assert answer.status_code == 403, (caller, answer.status_code, answer.text[:300])
        assert answer.json()["error"]["status"] == 403


async def test_a_team_admin_reaches_another_teams_key_as_if_it_did_not_exist(world: World) -> None:
    team_admin, owner = world.clients["team_admin"], world.clients["owner"]
    key = world.other_team_key
    missing = "no-such-key-000"
    for method, path, body in (("GET", "/api/keys/{}", None), ("PATCH", "/api/keys/{}", {"enabled": False}),
                               ("POST", "/api/keys/{}/rotate", {}), ("POST", "/api/keys/{}/revoke", None)):
        theirs = await team_admin.request(method, path.format(key), json=body)
        absent = await team_admin.request(method, path.format(missing), json=body)
        assert theirs.status_code == 404, (method, path, theirs.text)
        assert absent.status_code == 404
        # Same answer as for a key that does not exist (only the id in the message differs).
        assert theirs.json()["error"]["message"].replace(key, "?") == \
            absent.json()["error"]["message"].replace(missing, "?")
    budget = await team_admin.post("/api/usage/budget", json={"keyId": key, "limit": 5})
    assert budget.status_code == 404
    listed = await team_admin.get("/api/keys")
    assert listed.status_code == 200 and key not in {k["id"] for k in listed.json()["keys"]}
    assert key in {k["id"] for k in (await owner.get("/api/keys")).json()["keys"]}
    # The key is untouched by all of this.
    assert (await owner.get(f"/api/keys/{key}")).json()["enabled"] is True


async def test_a_team_admin_is_told_why_a_platform_route_is_refused(world: World) -> None:
    answer = await world.clients["team_admin"].get("/api/providers")
    assert answer.status_code == 403
    assert "Team admins manage their teams'" in answer.json()["error"]["message"]
    viewer = await world.clients["viewer"].put("/api/settings", json={})
    assert viewer.status_code == 403
    assert viewer.json()["error"]["message"] == "This needs the admin role; you are viewer."


def test_enforcement_is_the_session_gate() -> None:
    """Every /api operation walked above is behind require_session (where enforce runs)."""
    app = create_app(Settings())
    for route, method in access.operations(app):
        if route.path.startswith("/api/") and route.path_format not in UNGATED and method != "HEAD":
            assert access._gated_by(route, sessions.require_session), (method, route.path)


async def test_a_team_admins_usage_reads_hold_their_teams_rows_only(world: World) -> None:
    """Usage history, request logs and one request's log: the same routes, other teams' rows
    absent (and one of their requests a 404)."""
    owner, team_admin = world.clients["owner"], world.clients["team_admin"]
    async with world.admin.app.state.admin.pool.connection() as conn:
        for request_id, team in (("req-alpha-1", "alpha"), ("req-alpha-2", "alpha"), ("req-beta-1", "beta")):
            await conn.execute("INSERT INTO usage (request_id, key_id, model, status, started_at, team_id) "
                               "VALUES (%s, %s, 'm', 200, now() - interval '1 minute', %s)",
                               (request_id, f"key-{team}", team))
    mine = {row["requestId"] for row in (await team_admin.get("/api/usage/request-logs")).json()["requests"]}
    every = {row["requestId"] for row in (await owner.get("/api/usage/request-logs")).json()["requests"]}
    assert mine == {"req-alpha-1", "req-alpha-2"} and every >= mine | {"req-beta-1"}
    assert (await team_admin.get("/api/usage/history")).json()["totals"]["requests"] == 2
    assert (await owner.get("/api/usage/history")).json()["totals"]["requests"] >= 3
    assert (await team_admin.get("/api/usage/request-logs/req-alpha-1")).status_code == 200
    assert (await team_admin.get("/api/usage/request-logs/req-beta-1")).status_code == 404
    assert (await owner.get("/api/usage/request-logs/req-beta-1")).status_code == 200
    lines = (await team_admin.get("/api/usage/logs")).json()["logs"]
    assert len(lines) == 2 and all("key=key-alpha" in line for line in lines)

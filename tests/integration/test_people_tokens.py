"""People and management tokens: who may grant what (owners alone touch owners), team scopes that
must exist, token secrets shown once and kept hashed, expiry and revocation at once, last use
noted at most once a minute, no CSRF for tokens (still for cookie sessions), a person's session
following the people table, and the real actor (and team) on every audit row, queryable by
actor, team and time."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from starlette.requests import Request

from omniroute.config.spec import ConfigFile
from omniroute_admin import access, sessions
from omniroute_admin.app import create_app
from omniroute_admin.features import config_file
from tests.integration.admin_app import Admin, running_admin

pytestmark = pytest.mark.xdist_group("people_tokens")


@pytest.fixture(scope="module")
async def admin(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Admin]:
    async with running_admin(tmp_path_factory.mktemp("people")) as running:
        for team in ("alpha", "beta"):
            created = await running.client.post("/api/teams", json={"id": team, "name": team})
            assert created.status_code == 201, created.text
        yield running


async def _token(admin: Admin, name: str, role: str, **extra: Any) -> tuple[dict[str, Any], httpx.AsyncClient]:
    answer = await admin.client.post("/api/tokens", json={"name": name, "role": role, **extra})
    assert answer.status_code == 201, answer.text
    client = admin.anonymous()
    client.headers["authorization"] = f"Bearer {answer.json()['token']}"
    return answer.json(), client


async def _rows(admin: Admin, query: str) -> list[dict[str, Any]]:
    answer = await admin.client.get(f"/api/audit?{query}")
    assert answer.status_code == 200, answer.text
    entries: list[dict[str, Any]] = answer.json()["entries"]
    return entries


async def test_a_token_is_shown_once_and_kept_as_its_hash(admin: Admin) -> None:
    created, client = await _token(admin, "ci-hash", "viewer")
    secret = created["token"]
    assert secret.startswith("omr_mt_") and len(secret) > 40 and created["prefix"] == secret[:11]
    listed = (await admin.client.get("/api/tokens")).json()["tokens"]
    mine = next(t for t in listed if t["name"] == "ci-hash")
    assert "token" not in mine and secret not in str(listed)
    async with admin.app.state.admin.pool.connection() as conn:
        row = await (await conn.execute("SELECT token_hash, token_prefix FROM management_tokens "
                                        "WHERE name = 'ci-hash'")).fetchone()
    assert row == (hashlib.sha256(secret.encode()).hexdigest(), secret[:11])
    assert (await client.get("/api/providers")).status_code == 200
    await client.aclose()


async def test_token_rules_on_creation(admin: Admin) -> None:
    _, admin_token = await _token(admin, "ci-admin", "admin")
    cases = [({"name": "t1", "role": "team_admin"}, 400, "needs a team_id"),
             ({"name": "t2", "role": "team_admin", "team_id": "nope"}, 400, "No team 'nope'"),
             ({"name": "t3", "role": "viewer", "team_id": "alpha"}, 400, "team_admin tokens only"),
             ({"name": "t4", "role": "owner"}, 403, "Only an owner"),
             ({"name": "t5", "role": "viewer", "expires_at": "2001-01-01T00:00:00Z"}, 400, "in the past"),
             ({"name": "ci-admin", "role": "viewer"}, 409, "exists already")]
    for body, status, said in cases:
        answer = await admin_token.post("/api/tokens", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert said in answer.json()["error"]["message"]
    # The password session is an owner: it may create owner tokens.
    owner = await admin.client.post("/api/tokens", json={"name": "ci-owner", "role": "owner"})
    assert owner.status_code == 201
    # An admin cannot revoke an owner's token either.
    refused = await admin_token.delete(f"/api/tokens/{owner.json()['id']}")
    assert refused.status_code == 403
    await admin_token.aclose()


async def test_expired_and_revoked_tokens_are_refused_at_once(admin: Admin) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=2)
    _, client = await _token(admin, "ci-expiring", "viewer", expires_at=soon.isoformat())
    assert (await client.get("/api/providers")).status_code == 200
    async with admin.app.state.admin.pool.connection() as conn:   # let it expire now
        await conn.execute("UPDATE management_tokens SET expires_at = now() - interval '1 s' "
                           "WHERE name = 'ci-expiring'")
    expired = await client.get("/api/providers")
    assert expired.status_code == 401
    assert expired.json()["error"]["message"] == "Unknown, expired or revoked management token."
    revoked, other = await _token(admin, "ci-revoked", "admin")
    assert (await other.get("/api/providers")).status_code == 200
    assert (await admin.client.delete(f"/api/tokens/{revoked['id']}")).status_code == 200
    assert (await other.get("/api/providers")).status_code == 401   # the very next call
    assert (await admin.client.delete(f"/api/tokens/{revoked['id']}")).status_code == 404
    forged = admin.anonymous()
    forged.headers["authorization"] = "Bearer omr_mt_not-a-real-token-0000000000000000000"
    assert (await forged.get("/api/providers")).status_code == 401
    for client_ in (client, other, forged):
        await client_.aclose()


async def test_last_use_is_written_at_most_once_a_minute(admin: Admin) -> None:
    created, client = await _token(admin, "ci-touch", "viewer")
    assert created["last_used_at"] is None
    for _ in range(3):
        assert (await client.get("/api/tokens")).status_code == 200
    first = next(t for t in (await client.get("/api/tokens")).json()["tokens"] if t["name"] == "ci-touch")
    assert first["last_used_at"] is not None
    for _ in range(3):
        await client.get("/api/tokens")
    again = next(t for t in (await client.get("/api/tokens")).json()["tokens"] if t["name"] == "ci-touch")
    assert again["last_used_at"] == first["last_used_at"]
    await client.aclose()


async def test_tokens_need_no_csrf_and_cookie_sessions_still_do(admin: Admin) -> None:
    _, client = await _token(admin, "ci-csrf", "admin")
    body = {"instance_name": "via-token"}
    assert (await client.put("/api/settings", json=body)).status_code == 200
    async with admin.anonymous() as browser:
        login = await browser.post("/api/auth/login", json={"password": "initial-pass-123"})
        assert login.status_code == 200
        refused = await browser.put("/api/settings", json=body)
        assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["error"]["message"]
    await client.aclose()


async def test_only_owners_touch_owners(admin: Admin) -> None:
    _, admin_token = await _token(admin, "ci-people", "admin")
    refused = await admin_token.post("/api/people", json={"email": "boss@example.com", "role": "owner"})
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "Only an owner may grant the owner role."
    boss = await admin.client.post("/api/people", json={"email": "boss@example.com", "name": "Boss",
                                                         "role": "owner"})
    assert boss.status_code == 201, boss.text
    boss_id = boss.json()["id"]
    demote = await admin_token.put(f"/api/people/{boss_id}", json={"email": "boss@example.com",
                                                                   "role": "viewer"})
    assert demote.status_code == 403 and "change an owner" in demote.json()["error"]["message"]
    assert (await admin_token.delete(f"/api/people/{boss_id}")).status_code == 403
    ann = await admin_token.post("/api/people", json={"email": "ann@example.com", "name": "Ann",
                                                      "role": "team_admin", "team_ids": ["alpha"]})
    assert ann.status_code == 201, ann.text
    promote = await admin_token.put(f"/api/people/{ann.json()['id']}",
                                    json={"email": "ann@example.com", "role": "owner"})
    assert promote.status_code == 403
    moved = await admin_token.put(f"/api/people/{ann.json()['id']}",
                                  json={"email": "ann@example.com", "name": "Ann", "role": "team_admin",
                                        "team_ids": ["alpha", "beta"]})
    assert moved.status_code == 200 and moved.json()["team_ids"] == ["alpha", "beta"]
    assert (await admin.client.delete(f"/api/people/{boss_id}")).status_code == 200
    assert (await admin.client.get(f"/api/people/{boss_id}")).status_code == 404
    await admin_token.aclose()


async def test_people_input_is_checked(admin: Admin) -> None:
    cases = [({"email": "x@example.com", "role": "team_admin"}, 400, "needs team_ids"),
             ({"email": "x@example.com", "role": "team_admin", "team_ids": ["gamma"]}, 400,
              "No such team: gamma"),
             ({"email": "x@example.com", "role": "viewer", "team_ids": ["alpha"]}, 400, "team admins only"),
             ({"email": "not-an-email", "role": "viewer"}, 400, "email"),
             ({"email": "x@example.com", "role": "superuser"}, 400, "role")]
    for body, status, said in cases:
        answer = await admin.client.post("/api/people", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert said in answer.json()["error"]["message"], answer.text
    first = await admin.client.post("/api/people", json={"email": "dup@example.com", "role": "viewer"})
    assert first.status_code == 201
    again = await admin.client.post("/api/people", json={"email": "DUP@example.com", "role": "viewer"})
    assert again.status_code == 409
    assert (await admin.client.get("/api/people/no-such-person")).status_code == 404


async def test_a_persons_session_follows_the_people_table(admin: Admin) -> None:
    """A role change or removal applies to the sessions a person already holds (next call)."""
    created = await admin.client.post("/api/people", json={"email": "sam@example.com", "role": "admin"})
    person = created.json()
    state = admin.app.state.admin
    principal = access.Principal(kind="person", actor="person:sam@example.com", role="admin",
                                 person_id=person["id"])

    # The session single sign-on would start for them (start_session reads only the headers).
    request = Request({"type": "http", "headers": [(b"user-agent", b"test")], "client": ("127.0.0.1", 1)})
    issued = await sessions.start_session(state, request, principal)
    sam = admin.anonymous()
    sam.headers["authorization"] = f"Bearer {issued['token']}"
    assert (await sam.put("/api/settings", json={"instance_name": "by-sam"})).status_code == 200
    rows = await _rows(admin, "actor=person:sam@example.com&action=settings.*")
    assert rows, "the change is recorded under the person"
    listed = (await admin.client.get("/api/sessions")).json()["sessions"]
    assert {"actor": "person:sam@example.com", "role": "admin"}.items() <= \
        next(s for s in listed if s["actor"] == "person:sam@example.com").items()
    assert any(s["actor"] == "admin" and s["role"] == "owner" for s in listed)
    await admin.client.put(f"/api/people/{person['id']}", json={"email": "sam@example.com", "role": "viewer"})
    demoted = await sam.put("/api/settings", json={"instance_name": "by-sam-2"})
    assert demoted.status_code == 403
    await admin.client.delete(f"/api/people/{person['id']}")
    gone = await sam.get("/api/providers")
    assert gone.status_code == 401
    await sam.aclose()


async def test_the_audit_names_the_real_actor_and_team(admin: Admin) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    _, ci = await _token(admin, "ci-audit", "admin")
    _, alpha_admin = await _token(admin, "ci-alpha", "team_admin", team_id="alpha")
    created = await ci.post("/api/tokens", json={"name": "ci-made-by-token", "role": "team_admin",
                                                 "team_id": "beta"})
    assert created.status_code == 201
    key = await alpha_admin.post("/api/keys", json={"name": "alpha-key", "team": "alpha"})
    assert key.status_code == 201, key.text
    by_token = await _rows(admin, "actor=token:ci-audit")
    assert [(r["action"], r["team_id"]) for r in by_token] == [("tokens.create", "beta")]
    alpha_rows = await _rows(admin, f"team=alpha&since={started.isoformat().replace('+', '%2B')}")
    assert {r["actor"] for r in alpha_rows} >= {"token:ci-alpha", "admin"}
    assert all(r["team_id"] == "alpha" for r in alpha_rows)
    # The break-glass password's own acts say "admin".
    assert any(r["action"] == "tokens.create" for r in await _rows(admin, "actor=admin"))
    # A team admin's audit view holds their teams' rows only.
    seen = await alpha_admin.get("/api/audit?limit=500")
    assert seen.status_code == 200 and seen.json()["entries"]
    assert {r["team_id"] for r in seen.json()["entries"]} == {"alpha"}
    beta = await alpha_admin.get("/api/audit?team=beta")
    assert beta.json()["entries"] == []
    until = (datetime.now(UTC) - timedelta(days=1)).isoformat().replace("+", "%2B")
    assert await _rows(admin, f"actor=token:ci-audit&until={until}") == []
    for client in (ci, alpha_admin):
        await client.aclose()


async def test_the_config_file_declares_people(admin: Admin) -> None:
    """`people:` in the YAML file (GitOps): the same shape as the API's body, applied after the
    file's teams, idempotent, and a team that does not exist stops the start."""
    document = {"teams": [{"id": "gitops"}],
                "people": [{"email": "ops@example.com", "name": "Ops", "role": "team_admin",
                            "team_ids": ["gitops"]},
                           {"email": "audit@example.com", "role": "viewer"}]}
    state = admin.app.state.admin
    for _ in range(2):
        await config_file.apply(state, ConfigFile.model_validate(document))
    listed = {p["email"]: p for p in (await admin.client.get("/api/people")).json()["people"]}
    assert listed["ops@example.com"]["role"] == "team_admin"
    assert listed["ops@example.com"]["team_ids"] == ["gitops"]
    assert listed["ops@example.com"]["source"] == "config"
    assert listed["audit@example.com"]["role"] == "viewer"
    assert sum(1 for email in listed if email == "ops@example.com") == 1
    wrong = {"people": [{"email": "x@example.com", "role": "team_admin", "team_ids": ["nowhere"]}]}
    with pytest.raises(SystemExit, match="No such team: nowhere"):
        await config_file.apply(state, ConfigFile.model_validate(wrong))
    with pytest.raises(ValidationError):
        ConfigFile.model_validate({"people": [{"email": "x@example.com", "role": "root"}]})


async def test_only_an_owner_switches_the_login_off_by_any_route(admin: Admin) -> None:
    """Login off makes every caller an owner: PUT /api/settings may not do what the owner-only
    PUT /api/settings/require-login does."""
    _, admin_token = await _token(admin, "ci-login", "admin")
    refused = await admin_token.put("/api/settings", json={"require_login": False})
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "Only an owner may switch the management login on or off."
    assert (await admin_token.put("/api/settings/require-login", json={"requireLogin": False})).status_code == 403
    # Other general settings stay an admin's; sending the current value is no switch.
    assert (await admin_token.put("/api/settings", json={"require_login": True,
                                                         "instance_name": "by-admin"})).status_code == 200
    assert (await admin.client.get("/api/settings/require-login")).json() == {"requireLogin": True}
    await admin_token.aclose()


async def test_a_deleted_token_is_refused_at_once_by_another_admin_replica(admin: Admin) -> None:
    """Two admin replicas on one database: a token revoked on one is refused by the other on
    its very next call (no replica caches a token)."""
    created, _client = await _token(admin, "ci-replicas", "viewer")
    await _client.aclose()
    other = create_app(admin.settings)
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other, client=("127.0.0.1", 50001))
        async with httpx.AsyncClient(transport=transport, base_url="http://admin-2.test",
                                     headers={"authorization": f"Bearer {created['token']}"}) as replica:
            assert (await replica.get("/api/providers")).status_code == 200
            assert (await admin.client.delete(f"/api/tokens/{created['id']}")).status_code == 200
            started = time.monotonic()
            assert (await replica.get("/api/providers")).status_code == 401
            assert time.monotonic() - started < 1.0

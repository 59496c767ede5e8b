"""Teams and the key lifecycle through the management API (the admin in-process on its own
database): teams CRUD with their limits, budget and models; keys in a team and for a person;
update in place, rotate with a grace period, revoke, delete; team admins scoped to their teams
(404 for anything else, never 403); every change audited with its team and announced on
config.changed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from omniroute.config.snapshot import load_snapshot
from omniroute.config.watcher import changed_subject
from omniroute.secrets import hash_api_key
from omniroute.store import people_repo
from omniroute_admin import access, sessions
from tests.integration.admin_app import Admin, running_admin

# One admin for the module, its tests in file order on one worker.
pytestmark = pytest.mark.xdist_group("teams-keys-api")


@pytest.fixture(scope="module")
async def admin(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Admin]:
    async with running_admin(tmp_path_factory.mktemp("teams")) as running:
        yield running


async def session_for(admin: Admin, principal: access.Principal) -> httpx.AsyncClient:
    """A client with a session of `principal` (how a person's login ends: sessions.start_session),
    presented as a bearer token (no CSRF needed)."""
    request = Request({"type": "http", "method": "POST", "path": "/", "headers": [], "client": ("127.0.0.1", 1)})
    issued = await sessions.start_session(admin.app.state.admin, request, principal)
    client = admin.anonymous()
    client.headers["authorization"] = f"Bearer {issued['token']}"
    client.headers["x-csrf-token"] = issued["csrf"]   # what the dashboard's forms carry
    return client


def team_admin_of(*teams: str) -> access.Principal:
    return access.Principal(kind="person", actor="person:lead@example.com", role="team_admin",
                            team_ids=frozenset(teams))


async def audit_rows(admin: Admin, target: str) -> list[dict[str, Any]]:
    async with admin.app.state.admin.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT action, actor, detail, team_id FROM audit_log WHERE target = %s ORDER BY id", (target,))
        return [{"action": r[0], "actor": r[1], "detail": r[2], "team_id": r[3]} for r in await cursor.fetchall()]


class Announcements:
    """config.changed messages the admin publishes (what edges and routers reload on)."""

    def __init__(self) -> None:
        self.count = 0

    async def seen(self, _msg: Any) -> None:
        self.count += 1


@pytest.fixture
async def announced(admin: Admin) -> AsyncIterator[Announcements]:
    state = admin.app.state.admin
    seen = Announcements()
    subscription = await state.nats.subscribe(changed_subject(state.settings), cb=seen.seen)
    await state.nats.flush()
    yield seen
    await subscription.unsubscribe()


async def until_announced(seen: Announcements, at_least: int) -> None:
    for _ in range(100):
        if seen.count >= at_least:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{seen.count} config.changed announcements, expected {at_least}")


TEAM = {"id": "research", "name": "Research", "allowed_models": ["mock/gpt-4o-mini"],
        "limits": {"rpm": 60, "tpm": 10000, "concurrency": 4},
        "budget": {"limit_usd": 25, "period": "weekly", "alert_at": [0.5, 0.9]}}


async def test_team_crud_audited_and_announced(admin: Admin, announced: Announcements) -> None:
    created = await admin.client.post("/api/teams", json=TEAM)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"] == "research" and body["name"] == "Research" and body["key_count"] == 0
    assert body["allowed_models"] == ["mock/gpt-4o-mini"]
    assert body["limits"] == {"rpm": 60, "tpm": 10000, "concurrency": 4}
    assert body["budget"] == {"limit": 25.0, "period": "weekly", "alertAt": [0.5, 0.9]}
    again = await admin.client.post("/api/teams", json=TEAM)
    assert again.status_code == 409
    listed = (await admin.client.get("/api/teams")).json()["teams"]
    assert [t["id"] for t in listed] == ["default", "research"]

    patched = await admin.client.patch("/api/teams/research", json={"limits": {"rpm": 30}, "budget": None})
    assert patched.status_code == 200, patched.text
    assert patched.json()["limits"] == {"rpm": 30} and patched.json()["budget"] is None
    assert patched.json()["allowed_models"] == ["mock/gpt-4o-mini"]   # untouched
    put = await admin.client.put("/api/teams/research", json={**TEAM, "allowed_models": None})
    assert put.status_code == 200 and put.json()["allowed_models"] is None
    assert put.json()["budget"]["limit"] == 25.0
    mismatch = await admin.client.put("/api/teams/research", json={**TEAM, "id": "other"})
    assert mismatch.status_code == 400

    # The snapshot every edge and router builds carries the team as stored.
    snapshot = await load_snapshot(admin.settings.database_url, None)
    team = snapshot.teams["research"]
    assert team.limits == {"rpm": 60, "tpm": 10000, "concurrency": 4} and team.allowed_models is None
    assert team.budget == {"limit": 25.0, "period": "weekly", "alertAt": [0.5, 0.9]}

    rows = await audit_rows(admin, "research")
    assert [r["action"] for r in rows] == ["teams.create", "teams.update", "teams.update"]
    assert all(r["detail"]["team_id"] == "research" and r["team_id"] == "research" and r["actor"] == "admin"
               for r in rows)
    await until_announced(announced, 3)


@pytest.mark.parametrize(("body", "problem"), [
    ({"id": "bad id!"}, "id"),
    ({"id": "t1", "limits": {"rpm": -1}}, "rpm"),
    ({"id": "t1", "limits": {"rps": 3}}, "rps"),
    ({"id": "t1", "budget": {"limit_usd": -5}}, "limit"),
    ({"id": "t1", "budget": {"limit_usd": 5, "period": "yearly"}}, "period"),
    ({"id": "t1", "budget": {"limit_usd": 5, "alert_at": [1.5]}}, "alert_at"),
])
async def test_invalid_teams_are_refused_with_400(admin: Admin, body: dict[str, Any], problem: str) -> None:
    answer = await admin.client.post("/api/teams", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["status"] == 400 and problem in answer.json()["error"]["message"]


async def test_team_delete_refused_while_keys_belong_and_default_kept(admin: Admin) -> None:
    assert (await admin.client.post("/api/teams", json={"id": "doomed"})).status_code == 201
    key = (await admin.client.post("/api/keys", json={"name": "doomed-key", "team": "doomed"})).json()
    refused = await admin.client.delete("/api/teams/doomed")
    assert refused.status_code == 409 and "1 key" in refused.json()["error"]["message"]
    assert (await admin.client.delete(f"/api/keys/{key['id']}")).status_code == 200
    assert (await admin.client.delete("/api/teams/doomed")).status_code == 200
    assert (await admin.client.get("/api/teams/doomed")).status_code == 404
    assert (await admin.client.delete("/api/teams/doomed")).status_code == 404
    default = await admin.client.delete("/api/teams/default")
    assert default.status_code == 409 and "default" in default.json()["error"]["message"]


async def test_key_in_a_team_for_a_person(admin: Admin) -> None:
    await admin.client.put("/api/teams/owners", json={"id": "owners"})
    async with admin.app.state.admin.pool.connection() as conn:
        person = await people_repo.upsert(conn, email="ada@example.com", name="Ada", role="viewer",
                                          team_ids=[], source="api")
    by_mail = await admin.client.post("/api/keys", json={"name": "ada-key", "team": "owners",
                                                         "person": "ada@example.com"})
    assert by_mail.status_code == 201, by_mail.text
    made = by_mail.json()
    assert made["team"] == "owners" and made["person"] == person.id and made["state"] == "active"
    assert made["key"].startswith("sk-omni-")
    by_id = await admin.client.post("/api/keys", json={"name": "ada-key-2", "person": person.id})
    assert by_id.status_code == 201 and by_id.json()["team"] == "default"
    no_team = await admin.client.post("/api/keys", json={"name": "lost", "team": "nowhere"})
    assert no_team.status_code == 400 and no_team.json()["error"]["message"] == "No team 'nowhere'."
    no_person = await admin.client.post("/api/keys", json={"name": "lost", "person": "nobody@example.com"})
    assert no_person.status_code == 400 and "nobody@example.com" in no_person.json()["error"]["message"]
    assert all(k["name"] != "lost" for k in (await admin.client.get("/api/keys")).json()["keys"])
    snapshot = await load_snapshot(admin.settings.database_url, None)
    assert snapshot.keys_by_id[made["id"]].team_id == "owners"
    assert snapshot.keys_by_id[made["id"]].person_id == person.id


async def test_patch_updates_in_place_keeping_the_secret(admin: Admin, announced: Announcements) -> None:
    made = (await admin.client.post("/api/keys", json={"name": "patchy"})).json()
    await admin.client.put("/api/teams/patch-team", json={"id": "patch-team"})
    expiry = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    answer = await admin.client.patch(f"/api/keys/{made['id']}", json={
        "limits": {"rpm": 5, "concurrency": 1}, "allowed_models": ["a/b"], "budget": {"limit": 3, "period": "daily"},
        "expires_at": expiry.isoformat(), "team": "patch-team", "enabled": False})
    assert answer.status_code == 200, answer.text
    got = answer.json()
    assert got["limits"] == {"rpm": 5, "concurrency": 1} and got["allowed_models"] == ["a/b"]
    assert got["budget"] == {"limit": 3, "period": "daily"} and got["team"] == "patch-team"
    assert datetime.fromisoformat(got["expires_at"]) == expiry and got["state"] == "disabled"
    cleared = (await admin.client.patch(f"/api/keys/{made['id']}", json={
        "expires_at": None, "budget": None, "allowed_models": None, "enabled": True})).json()
    assert cleared["expires_at"] is None and cleared["budget"] is None and cleared["allowed_models"] is None
    assert cleared["limits"] == {"rpm": 5, "concurrency": 1} and cleared["state"] == "active"
    snapshot = await load_snapshot(admin.settings.database_url, None)
    assert snapshot.keys_by_hash[hash_api_key(made["key"])].id == made["id"]   # the same secret
    for bad, status in [({"team": "nowhere"}, 400), ({"budget": {"limit": -1}}, 400),
                        ({"limits": {"rpm": "x"}}, 400), ({"key": "sk-new-secret-0000000000"}, 400),
                        ({"expires_at": "2030-01-01T00:00:00"}, 400)]:
        refused = await admin.client.patch(f"/api/keys/{made['id']}", json=bad)
        assert refused.status_code == status, (bad, refused.text)
    assert (await admin.client.patch("/api/keys/key_nothere", json={"enabled": False})).status_code == 404
    rows = await audit_rows(admin, made["id"])
    assert [r["action"] for r in rows] == ["keys.create", "keys.update", "keys.update"]
    assert rows[1]["detail"]["team_id"] == "patch-team" and rows[1]["detail"]["from_team"] == "default"
    await until_announced(announced, 3)


async def test_rotate_with_grace_then_revoke(admin: Admin) -> None:
    made = (await admin.client.post("/api/keys", json={"name": "rotor"})).json()
    rotated = await admin.client.post(f"/api/keys/{made['id']}/rotate", json={"grace_seconds": 3600})
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["key"] != made["key"] and new["key"].startswith("sk-omni-") and new["state"] == "rotating"
    until = datetime.fromisoformat(new["previous_valid_until"])
    assert timedelta(minutes=59) < until - datetime.now(UTC) <= timedelta(hours=1)
    snapshot = await load_snapshot(admin.settings.database_url, None)
    old_entry = snapshot.keys_by_hash[hash_api_key(made["key"])]
    assert old_entry.id == made["id"] and old_entry.grace_until == until and old_entry.usable()
    assert not old_entry.usable(until + timedelta(seconds=1))
    assert snapshot.keys_by_hash[hash_api_key(new["key"])].grace_until is None

    # Rotating again without grace (no body: grace 0): both earlier secrets are refused at once.
    again = (await admin.client.post(f"/api/keys/{made['id']}/rotate")).json()
    assert again["state"] == "active" and again["previous_valid_until"] is None
    snapshot = await load_snapshot(admin.settings.database_url, None)
    assert hash_api_key(made["key"]) not in snapshot.keys_by_hash
    assert hash_api_key(new["key"]) not in snapshot.keys_by_hash
    for bad in ({"grace_seconds": -1}, {"grace_seconds": 30 * 86400 + 1}, {"grace": 5}):
        assert (await admin.client.post(f"/api/keys/{made['id']}/rotate", json=bad)).status_code == 400

    revoked = await admin.client.post(f"/api/keys/{made['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked" and revoked.json()["revoked_at"]
    snapshot = await load_snapshot(admin.settings.database_url, None)
    entry = snapshot.keys_by_hash[hash_api_key(again["key"])]
    assert entry.revoked_at is not None and not entry.usable()
    refused = await admin.client.post(f"/api/keys/{made['id']}/rotate", json={"grace_seconds": 0})
    assert refused.status_code == 409
    listed = {k["id"]: k for k in (await admin.client.get("/api/keys")).json()["keys"]}
    assert listed[made["id"]]["state"] == "revoked"   # kept, with its usage
    assert [r["action"] for r in await audit_rows(admin, made["id"])] == [
        "keys.create", "keys.rotate", "keys.rotate", "keys.revoke"]
    assert (await admin.client.post("/api/keys/key_nothere/revoke")).status_code == 404


async def test_team_admin_sees_and_manages_only_their_teams(admin: Admin) -> None:
    for team in ("alpha", "beta"):
        await admin.client.put(f"/api/teams/{team}", json={"id": team})
    beta_key = (await admin.client.post("/api/keys", json={"name": "beta-key", "team": "beta"})).json()
    lead = await session_for(admin, team_admin_of("alpha"))
    try:
        teams = (await lead.get("/api/teams")).json()["teams"]
        assert [t["id"] for t in teams] == ["alpha"]
        assert (await lead.get("/api/teams/alpha")).status_code == 200
        assert (await lead.get("/api/teams/beta")).status_code == 404
        # Team changes are an admin's.
        assert (await lead.patch("/api/teams/alpha", json={"limits": {"rpm": 1}})).status_code == 403
        assert (await lead.post("/api/teams", json={"id": "mine"})).status_code == 403

        created = await lead.post("/api/keys", json={"name": "alpha-key", "team": "alpha"})
        assert created.status_code == 201, created.text
        alpha_id = created.json()["id"]
        other_team = await lead.post("/api/keys", json={"name": "sneaky", "team": "beta"})
        assert other_team.status_code == 404 and other_team.json()["error"]["message"] == "No team 'beta'."
        default_team = await lead.post("/api/keys", json={"name": "sneaky"})   # "default" is not theirs
        assert default_team.status_code == 404
        assert [k["name"] for k in (await lead.get("/api/keys")).json()["keys"]] == ["alpha-key"]
        assert (await lead.get("/api/keys", params={"team": "beta"})).status_code == 404

        for method, path, body in [("GET", f"/api/keys/{beta_key['id']}", None),
                                   ("PATCH", f"/api/keys/{beta_key['id']}", {"limits": {"rpm": 1}}),
                                   ("POST", f"/api/keys/{beta_key['id']}/rotate", {"grace_seconds": 0}),
                                   ("POST", f"/api/keys/{beta_key['id']}/revoke", None)]:
            answer = await lead.request(method, path, json=body)
            assert answer.status_code == 404, (method, path, answer.text)
            assert answer.json()["error"]["message"] == f"No key {beta_key['id']!r}."
        moved = await lead.patch(f"/api/keys/{alpha_id}", json={"team": "beta"})
        assert moved.status_code == 404
        assert (await lead.patch(f"/api/keys/{alpha_id}", json={"limits": {"rpm": 9}})).json()["limits"] == {"rpm": 9}
        assert (await lead.post(f"/api/keys/{alpha_id}/rotate", json={"grace_seconds": 60})).status_code == 200
        assert (await lead.post(f"/api/keys/{alpha_id}/revoke")).json()["state"] == "revoked"
        assert (await lead.delete(f"/api/keys/{alpha_id}")).status_code == 403   # delete: admin
        rows = await audit_rows(admin, alpha_id)
        assert {r["actor"] for r in rows} == {"person:lead@example.com"}
        assert all(r["team_id"] == "alpha" for r in rows)
    finally:
        await lead.aclose()
    unchanged = (await admin.client.get(f"/api/keys/{beta_key['id']}")).json()
    assert unchanged["state"] == "active" and unchanged["limits"] == {}


async def test_viewer_reads_keys_and_teams_but_changes_nothing(admin: Admin) -> None:
    await admin.client.post("/api/keys", json={"name": "seen-by-viewer"})
    viewer = await session_for(admin, access.Principal(kind="person", actor="person:v@example.com", role="viewer"))
    try:
        teams = (await viewer.get("/api/teams")).json()["teams"]
        assert "default" in [t["id"] for t in teams]
        listed = (await viewer.get("/api/keys")).json()["keys"]
        assert listed and all("key" not in k for k in listed)   # never a secret
        some = listed[0]["id"]
        for method, path, body in [("POST", "/api/keys", {"name": "nope"}),
                                   ("PATCH", f"/api/keys/{some}", {"enabled": False}),
                                   ("POST", f"/api/keys/{some}/rotate", {"grace_seconds": 0}),
                                   ("POST", f"/api/keys/{some}/revoke", None),
                                   ("DELETE", f"/api/keys/{some}", None),
                                   ("POST", "/api/teams", {"id": "nope"}),
                                   ("PATCH", "/api/teams/default", {"name": "x"})]:
            assert (await viewer.request(method, path, json=body)).status_code == 403, (method, path)
    finally:
        await viewer.aclose()


async def test_usage_and_logs_by_team_and_person(admin: Admin) -> None:
    for team in ("u-red", "u-blue"):
        await admin.client.put(f"/api/teams/{team}", json={"id": team})
    async with admin.app.state.admin.pool.connection() as conn:
        person = await people_repo.upsert(conn, email="grace@example.com", name="Grace", role="viewer",
                                          team_ids=[], source="api")
    red = (await admin.client.post("/api/keys", json={"name": "red-key", "team": "u-red",
                                                      "person": "grace@example.com"})).json()
    blue = (await admin.client.post("/api/keys", json={"name": "blue-key", "team": "u-blue"})).json()
    async with admin.app.state.admin.pool.connection() as conn:
        # u1, u2: rows as the router records them now; u3: a row from before (no team, no person),
        # which counts for its key's team and person.
        await conn.execute(
            "INSERT INTO usage (request_id, key_id, team_id, person_id, provider, model, status, input_tokens,"
            " output_tokens, latency_ms, cost_usd, started_at) VALUES "
            "('u1', %(red)s, 'u-red', %(person)s, 'p', 'm', 200, 10, 5, 50, 1, now() - interval '10 minutes'),"
            "('u2', %(blue)s, 'u-blue', '', 'p', 'm', 200, 20, 5, 50, 2, now() - interval '9 minutes'),"
            "('u3', %(red)s, '', '', 'p', 'm', 500, 30, 0, 50, 4, now() - interval '8 minutes')",
            {"red": red["id"], "blue": blue["id"], "person": person.id})
    window = {"from": (datetime.now(UTC) - timedelta(hours=1)).isoformat()}

    async def totals(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
        answer = await client.get("/api/usage/history", params={**window, "bucket": "hour", **params})
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    by_team = await totals(admin.client, groupBy="team")
    per_team: dict[str, list[float]] = {}
    for bucket in by_team["buckets"]:
        entry = per_team.setdefault(bucket["team"], [0, 0.0])
        entry[0] += bucket["requests"]
        entry[1] += bucket["costUsd"]
    assert per_team == {"u-red": [2, 5.0], "u-blue": [1, 2.0]}
    by_person = await totals(admin.client, groupBy="person")
    per_person: dict[str, int] = {}
    for bucket in by_person["buckets"]:  # the rows may fall into two hours
        per_person[bucket["person"]] = per_person.get(bucket["person"], 0) + bucket["requests"]
    assert per_person == {"": 1, person.id: 2}
    assert (await totals(admin.client, team="u-blue"))["totals"]["requests"] == 1
    assert (await totals(admin.client, person="grace@example.com"))["totals"]["costUsd"] == 5.0
    assert (await totals(admin.client, person=person.id))["totals"]["requests"] == 2
    unknown = await admin.client.get("/api/usage/history", params={**window, "person": "nobody@example.com"})
    assert unknown.status_code == 404

    logs = (await admin.client.get("/api/usage/request-logs", params={**window, "team": "u-red"})).json()
    assert sorted((r["requestId"], r["teamId"], r["personId"]) for r in logs["requests"]) == [
        ("u1", "u-red", person.id), ("u3", "u-red", person.id)]

    lead = await session_for(admin, team_admin_of("u-blue"))
    try:
        mine = await totals(lead, groupBy="team")   # the filter is forced: their team only
        assert [(b["team"], b["requests"]) for b in mine["buckets"]] == [("u-blue", 1)]
        assert mine["totals"]["requests"] == 1
        other = await lead.get("/api/usage/history", params={**window, "team": "u-red"})
        assert other.status_code == 404 and other.json()["error"]["message"] == "No team 'u-red'."
        their_logs = (await lead.get("/api/usage/request-logs", params=window)).json()["requests"]
        assert [r["requestId"] for r in their_logs] == ["u2"]
        assert (await lead.get("/api/usage/request-logs", params={**window, "team": "u-red"})).status_code == 404
        their_page = (await lead.get("/dashboard/usage", params={"group": "team", "period": "1h"})).text
        assert '<th scope="row">u-blue</th>' in their_page and "u-red" not in their_page
        their_log_page = (await lead.get("/dashboard/logs")).text
        assert "<code>u2</code>" in their_log_page and "<code>u1</code>" not in their_log_page
    finally:
        await lead.aclose()

    # The dashboard's usage page: a breakdown by team.
    page = await admin.client.get("/dashboard/usage", params={"group": "team", "period": "1h"})
    assert page.status_code == 200
    assert '<th scope="row">u-red</th><td class="num">2</td>' in page.text
    assert '<th scope="row">u-blue</th><td class="num">1</td>' in page.text
    by_person_page = await admin.client.get("/dashboard/usage", params={"group": "person", "period": "1h"})
    assert '<th scope="row">grace@example.com</th><td class="num">2</td>' in by_person_page.text
    log_page = (await admin.client.get("/dashboard/logs", params={"team": "u-red"})).text
    assert "<code>u1</code>" in log_page and "<code>u3</code>" in log_page and "<code>u2</code>" not in log_page
    assert "<td>red-key</td><td>u-red</td>" in log_page
    # Whatever the grouping, the page also shows usage and spend by team.
    by_key_page = (await admin.client.get("/dashboard/usage", params={"group": "key", "period": "1h"})).text
    by_team_table = by_key_page[by_key_page.index('id="usage-by-team"'):]
    assert ('<th scope="row">u-red</th><td class="num">2</td><td class="num">40</td><td class="num">5</td>'
            '<td class="num">$5.0000</td><td class="num">1</td>') in by_team_table


async def test_dashboard_keys_page_follows_the_role(admin: Admin) -> None:
    for team in ("d-mine", "d-other"):
        await admin.client.put(f"/api/teams/{team}", json={"id": team})
    mine = (await admin.client.post("/api/keys", json={"name": "d-mine-key", "team": "d-mine"})).json()
    other = (await admin.client.post("/api/keys", json={"name": "d-other-key", "team": "d-other"})).json()

    viewer = await session_for(admin, access.Principal(kind="person", actor="person:v@example.com", role="viewer"))
    lead = await session_for(admin, team_admin_of("d-mine"))
    try:
        seen = (await viewer.get("/dashboard/keys")).text
        assert "d-other-key" in seen and "Create a key" not in seen and "Revoke" not in seen
        refused = await viewer.post(f"/dashboard/keys/{mine['id']}/revoke",
                                    data={"csrf_token": viewer.headers["x-csrf-token"]})
        assert refused.status_code == 403   # the page gate refuses the role, as the API does
        assert (await admin.client.get(f"/api/keys/{mine['id']}")).json()["state"] == "active"
        assert "Create team" not in (await viewer.get("/dashboard/teams")).text

        theirs = (await lead.get("/dashboard/keys")).text
        assert "d-mine-key" in theirs and "d-other-key" not in theirs and "Create a key" in theirs
        assert '<option>d-mine</option>' in theirs and "d-other" not in theirs
        assert "/delete" not in theirs   # delete: admin
        csrf = {"csrf_token": lead.headers["x-csrf-token"]}
        assert (await lead.post(f"/dashboard/keys/{other['id']}/revoke", data=csrf)).status_code == 303
        assert (await admin.client.get(f"/api/keys/{other['id']}")).json()["state"] == "active"
        assert (await lead.post(f"/dashboard/keys/{mine['id']}/revoke", data=csrf)).status_code == 303
        assert (await admin.client.get(f"/api/keys/{mine['id']}")).json()["state"] == "revoked"
        made = await lead.post("/dashboard/keys", data={**csrf, "name": "d-made", "team": "d-other"})
        assert made.status_code == 303   # refused: back with the reason
        assert "Not created: No team &#39;d-other&#39;." in (await lead.get(made.headers["location"])).text
        assert all(k["name"] != "d-made" for k in (await admin.client.get("/api/keys")).json()["keys"])
        teams_page = (await lead.get("/dashboard/teams")).text
        assert "d-mine" in teams_page and "d-other" not in teams_page and "Create team" not in teams_page
    finally:
        await viewer.aclose()
        await lead.aclose()

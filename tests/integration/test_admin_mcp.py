"""Managing the MCP gateway (issue 21) through the admin: /api/mcp/servers CRUD (credentials
write-only: encrypted at rest, masked when shown, clear only in the router's snapshot; URLs
SSRF-checked), each change audited and announced; health as the routers record it; MCP access
on teams and keys; tool_calls_per_minute limits; /api/mcp/calls filtered and scoped by team;
the config file's `mcp_servers:`; configuration sync carrying the servers."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from omniroute.config.snapshot import load_snapshot
from omniroute.config.spec import ConfigFile
from omniroute.config.watcher import changed_subject
from omniroute.secrets import Crypto
from omniroute.shared_state.mcp_health import MCP_BREAKER_PROFILE, McpBreakers
from omniroute_admin.features import config_file, sync_doc
from tests.integration.admin_app import Admin, running_admin
from tests.support import temp_database

pytestmark = pytest.mark.xdist_group("admin-mcp")

SECRET = "Bearer tool-server-secret-9f8e7d6c5b4a"
SERVER = {"id": "tickets", "name": "Ticket tools", "transport": "http", "url": "https://tools.example.com/mcp",
          "headers": {"Authorization": SECRET, "X-Tenant": "acme-tenant-0001"}, "timeout_s": 12.5,
          "price_per_call_usd": 0.002}


@pytest.fixture(scope="module")
async def admin(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Admin]:
    async with running_admin(tmp_path_factory.mktemp("mcp")) as running:
        for team in ("alpha", "beta"):
            assert (await running.client.post("/api/teams", json={"id": team})).status_code == 201
        yield running


async def _client_with_role(admin: Admin, role: str, team: str | None = None) -> httpx.AsyncClient:
    answer = await admin.client.post("/api/tokens", json={"name": f"mcp-{role}-{uuid.uuid4().hex[:8]}", "role": role,
                                                           "team_id": team})
    assert answer.status_code == 201, answer.text
    client = admin.anonymous()
    client.headers["authorization"] = f"Bearer {answer.json()['token']}"
    return client


async def _audit(admin: Admin, target: str) -> list[tuple[str, str]]:
    async with admin.app.state.admin.pool.connection() as conn:
        rows = await (await conn.execute("SELECT action, actor FROM audit_log WHERE target = %s ORDER BY id",
                                         (target,))).fetchall()
    return [(r[0], r[1]) for r in rows]


async def _stored(admin: Admin, server_id: str) -> tuple[Any, ...] | None:
    async with admin.app.state.admin.pool.connection() as conn:
        return await (await conn.execute("SELECT headers_enc, env_enc, url, command FROM mcp_servers WHERE id = %s",
                                         (server_id,))).fetchone()


class Announcements:
    def __init__(self) -> None:
        self.whats: list[bytes] = []

    async def seen(self, msg: Any) -> None:
        self.whats.append(msg.data)

    async def at_least(self, count: int) -> None:
        for _ in range(100):
            if len(self.whats) >= count:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"{len(self.whats)} config.changed announcements, expected {count}")


async def test_server_crud_keeps_credentials_write_only_audited_and_announced(admin: Admin) -> None:
    state = admin.app.state.admin
    seen = Announcements()
    subscription = await state.nats.subscribe(changed_subject(state.settings), cb=seen.seen)
    await state.nats.flush()
    try:
        created = await admin.client.post("/api/mcp/servers", json=SERVER)
        assert created.status_code == 201, created.text
        body = created.json()
        assert SECRET not in created.text and "acme-tenant-0001" not in created.text
        assert body["headers"] == {"Authorization": "Bear…5b4a", "X-Tenant": "acme…0001"}
        assert (body["id"], body["name"], body["transport"], body["url"], body["timeout_s"],
                body["price_per_call_usd"], body["enabled"], body["oauth_connection"]) == \
            ("tickets", "Ticket tools", "http", "https://tools.example.com/mcp", 12.5, 0.002, True, None)
        assert body["health"] == {"status": "healthy", "consecutiveFailures": 0, "retryAfterS": 0,
                                  "breaker": "CLOSED"}
        await seen.at_least(1)

        # At rest: encrypted with the master key; the router's snapshot (crypto given) has them clear.
        stored = await _stored(admin, "tickets")
        assert stored is not None and SECRET not in stored[0]
        snapshot = await load_snapshot(admin.settings.database_url, state.crypto)
        assert snapshot.mcp_servers["tickets"].headers == SERVER["headers"]
        assert snapshot.mcp_servers["tickets"].price_per_call_usd == "0.002000000"
        assert (await load_snapshot(admin.settings.database_url, None)).mcp_servers["tickets"].headers == {}

        again = await admin.client.post("/api/mcp/servers", json=SERVER)
        assert again.status_code == 409

        # PUT without headers keeps them; PATCH {} removes them; each change audited.
        replaced = await admin.client.put("/api/mcp/servers/tickets",
                                          json={**{k: v for k, v in SERVER.items() if k != "headers"},
                                                "name": "Tickets"})
        assert replaced.status_code == 200 and replaced.json()["name"] == "Tickets"
        assert set(replaced.json()["headers"]) == {"Authorization", "X-Tenant"}
        patched = await admin.client.patch("/api/mcp/servers/tickets", json={"enabled": False, "timeout_s": 3})
        assert patched.status_code == 200
        assert (patched.json()["enabled"], patched.json()["timeout_s"]) == (False, 3.0)
        assert set(patched.json()["headers"]) == {"Authorization", "X-Tenant"}
        cleared = await admin.client.patch("/api/mcp/servers/tickets", json={"headers": {}})
        assert cleared.json()["headers"] == {}
        assert (await _stored(admin, "tickets") or (None,))[0] is None

        listed = await admin.client.get("/api/mcp/servers")
        assert [s["id"] for s in listed.json()["servers"]] == ["tickets"]
        deleted = await admin.client.delete("/api/mcp/servers/tickets")
        assert deleted.status_code == 200 and deleted.json() == {"deleted": "tickets"}
        assert (await admin.client.get("/api/mcp/servers/tickets")).status_code == 404
        assert (await admin.client.delete("/api/mcp/servers/tickets")).status_code == 404
        assert await _audit(admin, "tickets") == [
            ("mcp_servers.create", "admin"), ("mcp_servers.update", "admin"), ("mcp_servers.update", "admin"),
            ("mcp_servers.update", "admin"), ("mcp_servers.delete", "admin")]
        await seen.at_least(5)
    finally:
        await subscription.unsubscribe()


async def test_a_stdio_server_keeps_its_env_secret(admin: Admin) -> None:
    spec = {"id": "local_fs", "transport": "stdio", "command": ["python", "-m", "fs_tools", "--root", "/srv"],
            "env": {"FS_TOKEN": "stdio-secret-0123456789"}}
    created = await admin.client.post("/api/mcp/servers", json=spec)
    assert created.status_code == 201, created.text
    assert created.json()["command"] == spec["command"] and created.json()["url"] is None
    assert "stdio-secret-0123456789" not in created.text and list(created.json()["env"]) == ["FS_TOKEN"]
    snapshot = await load_snapshot(admin.settings.database_url, admin.app.state.admin.crypto)
    assert snapshot.mcp_servers["local_fs"].env == {"FS_TOKEN": "stdio-secret-0123456789"}
    assert snapshot.mcp_servers["local_fs"].command == tuple(spec["command"])
    # Switching to http needs only the url: the command (and the env credentials) go.
    switched = await admin.client.patch("/api/mcp/servers/local_fs",
                                        json={"transport": "http", "url": "https://fs.example.com/mcp"})
    assert switched.status_code == 200, switched.text
    assert (switched.json()["command"], switched.json()["env"], switched.json()["url"]) == \
        (None, {}, "https://fs.example.com/mcp")
    assert (await _stored(admin, "local_fs") or (None, "x"))[1] is None
    half = await admin.client.patch("/api/mcp/servers/local_fs", json={"transport": "stdio"})
    assert half.status_code == 400 and "needs a command" in half.json()["error"]["message"]
    assert (await admin.client.delete("/api/mcp/servers/local_fs")).status_code == 200


@pytest.mark.parametrize(("body", "said"), [
    ({**SERVER, "url": "http://169.254.169.254/latest"}, "url refused"),
    ({**SERVER, "url": "file:///etc/passwd"}, "url refused"),
    ({**SERVER, "id": "two__parts"}, "no '__'"),
    ({**SERVER, "url": None}, "an http server needs a url"),
    ({"id": "s", "transport": "stdio"}, "needs a command"),
    ({"id": "s", "transport": "stdio", "command": ["x"], "url": "https://a.example.com"}, "are for http servers"),
    ({**SERVER, "headers": {"Bad Header": "x"}}, "HTTP tokens"),
    ({**SERVER, "timeout_s": 0}, "timeout_s"),
    ({**SERVER, "oauth_connection": "nope:none"}, "No connection 'nope:none'"),
    ({**SERVER, "surprise": 1}, "surprise"),
])
async def test_invalid_servers_are_refused_with_the_reason(admin: Admin, body: dict[str, Any], said: str) -> None:
    answer = await admin.client.post("/api/mcp/servers", json=body)
    assert answer.status_code == 400, answer.text
    assert said in answer.json()["error"]["message"] and answer.json()["error"]["status"] == 400
    assert (await admin.client.get(f"/api/mcp/servers/{body['id']}")).status_code == 404


async def test_health_shows_what_the_routers_recorded_and_a_new_url_forgets_it(admin: Admin) -> None:
    assert (await admin.client.post("/api/mcp/servers", json={**SERVER, "id": "flaky"})).status_code == 201
    breakers = McpBreakers(admin.app.state.admin.redis, admin.settings.env)
    for _ in range(MCP_BREAKER_PROFILE.failure_threshold):
        await breakers.record("flaky", False, MCP_BREAKER_PROFILE)
    health = (await admin.client.get("/api/mcp/servers/flaky")).json()["health"]
    assert health["status"] == "unhealthy" and health["consecutiveFailures"] == MCP_BREAKER_PROFILE.failure_threshold
    assert 0 < health["retryAfterS"] <= MCP_BREAKER_PROFILE.reset_timeout_s
    listed = {s["id"]: s for s in (await admin.client.get("/api/mcp/servers")).json()["servers"]}
    assert listed["flaky"]["health"]["status"] == "unhealthy"
    # A name change says nothing about reachability; a new URL does.
    await admin.client.patch("/api/mcp/servers/flaky", json={"name": "Flaky"})
    assert (await admin.client.get("/api/mcp/servers/flaky")).json()["health"]["status"] == "unhealthy"
    await admin.client.patch("/api/mcp/servers/flaky", json={"url": "https://tools2.example.com/mcp"})
    assert (await admin.client.get("/api/mcp/servers/flaky")).json()["health"]["status"] == "healthy"
    assert (await admin.client.delete("/api/mcp/servers/flaky")).status_code == 200


async def test_mcp_access_on_teams_and_keys_and_the_tool_call_limit(admin: Admin) -> None:
    team = await admin.client.patch("/api/teams/alpha", json={
        "mcp_access": {"tickets": ["*"], "search": ["query", "fetch", "query"]},
        "limits": {"rpm": 100, "tool_calls_per_minute": 30}})
    assert team.status_code == 200, team.text
    assert team.json()["mcp_access"] == {"tickets": ["*"], "search": ["fetch", "query"]}
    assert team.json()["limits"] == {"rpm": 100, "tool_calls_per_minute": 30}
    # Other PATCHes leave the access as it is.
    assert (await admin.client.patch("/api/teams/alpha", json={"name": "Alpha"})).json()["mcp_access"] == \
        {"tickets": ["*"], "search": ["fetch", "query"]}
    key = await admin.client.post("/api/keys", json={"name": "agent", "team": "alpha",
                                                     "mcp_access": {"search": ["query"]},
                                                     "limits": {"tool_calls_per_minute": 5}})
    assert key.status_code == 201, key.text
    assert key.json()["mcp_access"] == {"search": ["query"]}
    plain = await admin.client.post("/api/keys", json={"name": "agent-plain", "team": "alpha"})
    assert plain.json()["mcp_access"] is None

    snapshot = await load_snapshot(admin.settings.database_url, None)
    assert snapshot.teams["alpha"].mcp_access == {"tickets": ("*",), "search": ("fetch", "query")}
    assert snapshot.teams["beta"].mcp_access is None   # default deny
    assert snapshot.keys_by_id[key.json()["id"]].mcp_access == {"search": ("query",)}
    assert snapshot.keys_by_id[key.json()["id"]].limits == {"tool_calls_per_minute": 5}
    assert snapshot.keys_by_id[plain.json()["id"]].mcp_access is None

    narrowed = await admin.client.patch(f"/api/keys/{key.json()['id']}", json={"mcp_access": {}})
    assert narrowed.status_code == 200 and narrowed.json()["mcp_access"] == {}
    back = await admin.client.patch(f"/api/keys/{key.json()['id']}", json={"mcp_access": None})
    assert back.json()["mcp_access"] is None

    for wrong, said in [({"mcp_access": {"tickets": ["*", "x"]}}, "stands alone"),
                        ({"mcp_access": {"a__b": ["*"]}}, "is not an MCP server id"),
                        ({"mcp_access": {"tickets": ["has space"]}}, "tool names"),
                        ({"limits": {"tool_calls_per_minute": -1}}, "tool_calls_per_minute")]:
        answer = await admin.client.patch("/api/teams/beta", json=wrong)
        assert answer.status_code == 400 and said in answer.json()["error"]["message"], answer.text
    refused = await admin.client.patch(f"/api/keys/{key.json()['id']}", json={"mcp_access": {"t": ["*", "a"]}})
    assert refused.status_code == 400


async def _insert_calls(admin: Admin) -> datetime:
    now = datetime.now(UTC)
    rows = [("call-a1", "key-a", "alpha", "tickets", "create", "ok", "0.002", now - timedelta(minutes=3)),
            ("call-a2", "key-a", "alpha", "search", "query", "refused", "0", now - timedelta(minutes=2)),
            ("call-a3", "key-a2", "alpha", "tickets", "close", "timeout", "0", now - timedelta(minutes=1)),
            ("call-b1", "key-b", "beta", "tickets", "create", "ok", "0.002", now - timedelta(hours=2))]
    async with admin.app.state.admin.pool.connection() as conn:
        for request_id, key_id, team_id, server, name, outcome, cost, started in rows:
            args = b'{"title": "x"}'
            await conn.execute(
                "INSERT INTO mcp_calls (request_id, key_id, team_id, server_id, method, name, args_bytes, "
                "args_sha256, result_bytes, latency_ms, outcome, error_message, cost_usd, started_at) "
                "VALUES (%s, %s, %s, %s, 'tools/call', %s, %s, %s, 42, 12.5, %s, %s, %s, %s) "
                "ON CONFLICT (request_id) DO NOTHING",
                (request_id, key_id, team_id, server, name, len(args), hashlib.sha256(args).hexdigest(), outcome,
                 "" if outcome == "ok" else outcome, cost, started))
    return now


async def test_calls_filtered_and_scoped_to_a_team_admins_teams(admin: Admin) -> None:
    now = await _insert_calls(admin)
    every = (await admin.client.get("/api/mcp/calls")).json()
    ids = [c["requestId"] for c in every["calls"]]
    assert ids[:4] == ["call-a3", "call-a2", "call-a1", "call-b1"]   # newest first
    first = every["calls"][2]
    assert first == {"requestId": "call-a1", "keyId": "key-a", "teamId": "alpha", "personId": "",
                     "serverId": "tickets", "method": "tools/call", "name": "create", "argsBytes": 14,
                     "argsSha256": hashlib.sha256(b'{"title": "x"}').hexdigest(), "resultBytes": 42,
                     "latencyMs": 12.5, "outcome": "ok", "error": "", "costUsd": 0.002,
                     "startedAt": first["startedAt"]}
    assert every["totals"] == {"calls": 4, "costUsd": 0.004, "byOutcome": {"ok": 2, "refused": 1, "timeout": 1}}

    async def ids_of(client: httpx.AsyncClient, query: str) -> list[str]:
        answer = await client.get("/api/mcp/calls" + query)
        assert answer.status_code == 200, answer.text
        return [c["requestId"] for c in answer.json()["calls"]]

    owner = admin.client
    assert await ids_of(owner, "?keyId=key-a") == ["call-a2", "call-a1"]
    assert await ids_of(owner, "?serverId=tickets&outcome=ok") == ["call-a1", "call-b1"]
    assert await ids_of(owner, "?teamId=beta") == ["call-b1"]
    since = (now - timedelta(minutes=10)).isoformat()
    assert await ids_of(owner, "?" + str(httpx.QueryParams({"since": since}))) == ["call-a3", "call-a2", "call-a1"]
    until = (now - timedelta(minutes=150)).isoformat()
    assert await ids_of(owner, "?" + str(httpx.QueryParams({"until": until}))) == []
    assert await ids_of(owner, "?limit=1") == ["call-a3"]
    bad = await owner.get("/api/mcp/calls?outcome=sideways")
    assert bad.status_code == 400 and "outcome must be one of" in bad.json()["error"]["message"]

    team_admin = await _client_with_role(admin, "team_admin", "alpha")
    viewer = await _client_with_role(admin, "viewer")
    try:
        assert await ids_of(team_admin, "") == ["call-a3", "call-a2", "call-a1"]
        assert (await team_admin.get("/api/mcp/calls")).json()["totals"]["calls"] == 3
        assert await ids_of(team_admin, "?serverId=tickets") == ["call-a3", "call-a1"]
        assert (await team_admin.get("/api/mcp/calls?teamId=beta")).status_code == 404
        assert await ids_of(team_admin, "?keyId=key-b") == []
        assert await ids_of(viewer, "?teamId=beta") == ["call-b1"]
    finally:
        await team_admin.aclose()
        await viewer.aclose()


async def test_roles_servers_are_read_by_viewers_and_changed_by_admins(admin: Admin) -> None:
    viewer = await _client_with_role(admin, "viewer")
    team_admin = await _client_with_role(admin, "team_admin", "beta")
    admin_role = await _client_with_role(admin, "admin")
    try:
        assert (await viewer.get("/api/mcp/servers")).status_code == 200
        refused = await viewer.post("/api/mcp/servers", json={**SERVER, "id": "by-viewer"})
        assert refused.status_code == 403
        assert (await team_admin.get("/api/mcp/servers")).status_code == 403
        assert (await team_admin.patch("/api/mcp/servers/x", json={})).status_code == 403
        made = await admin_role.post("/api/mcp/servers", json={**SERVER, "id": "by-admin"})
        assert made.status_code == 201, made.text
        assert (await viewer.get("/api/mcp/servers/by-admin")).json()["id"] == "by-admin"
        assert (await viewer.delete("/api/mcp/servers/by-admin")).status_code == 403
        assert (await admin_role.delete("/api/mcp/servers/by-admin")).status_code == 200
        actors = await _audit(admin, "by-admin")
        assert [a for a, _ in actors] == ["mcp_servers.create", "mcp_servers.delete"]
        assert all(actor.startswith("token:") for _, actor in actors), actors
    finally:
        for client in (viewer, team_admin, admin_role):
            await client.aclose()


FILE: dict[str, Any] = {
    "providers": [{"id": "gh", "type": "openai", "connections": [{"name": "main", "api_key": "sk-gh-0000000000"}]}],
    "mcp_servers": [{"id": "docs", "url": "https://docs-mcp.example.com/mcp",
                     "headers": {"Authorization": "Bearer file-secret-000111"}, "price_per_call_usd": 0.01},
                    {"id": "gh-tools", "url": "https://gh-mcp.example.com/mcp", "oauth_connection": "gh:main"},
                    {"id": "shell", "transport": "stdio", "command": ["mcp-shell"], "env": {"SHELL_KEY": "k-1"}}],
    "teams": [{"id": "filed-team", "mcp_access": {"docs": ["*"], "gh-tools": ["search_issues"]},
               "limits": {"tool_calls_per_minute": 20}}],
    "keys": [{"name": "filed-key", "key": "sk-omni-filed-mcp-000000000", "team": "filed-team",
              "mcp_access": {"docs": ["lookup"]}}],
}


async def test_config_file_declares_servers_and_access_idempotently(admin: Admin) -> None:
    state = admin.app.state.admin
    await config_file.apply(state, ConfigFile.model_validate(FILE))
    async with state.pool.connection() as conn:
        first = await (await conn.execute("SELECT id, headers_enc, updated_at FROM mcp_servers "
                                          "WHERE id IN ('docs', 'gh-tools', 'shell') ORDER BY id")).fetchall()
    await config_file.apply(state, ConfigFile.model_validate(FILE))
    snapshot = await load_snapshot(admin.settings.database_url, state.crypto)
    docs, gh, shell = (snapshot.mcp_servers[s] for s in ("docs", "gh-tools", "shell"))
    assert docs.headers == {"Authorization": "Bearer file-secret-000111"} and docs.price_per_call_usd == "0.010000000"
    assert gh.oauth_connection_id == "gh:main" and gh.headers == {}
    assert shell.command == ("mcp-shell",) and shell.env == {"SHELL_KEY": "k-1"} and shell.transport == "stdio"
    assert snapshot.teams["filed-team"].mcp_access == {"docs": ("*",), "gh-tools": ("search_issues",)}
    assert snapshot.teams["filed-team"].limits == {"tool_calls_per_minute": 20}
    key = next(k for k in snapshot.keys_by_id.values() if k.name == "filed-key")
    assert key.mcp_access == {"docs": ("lookup",)}
    async with state.pool.connection() as conn:
        assert len(first) == 3 and len(await (await conn.execute(
            "SELECT 1 FROM mcp_servers WHERE id IN ('docs', 'gh-tools', 'shell')")).fetchall()) == 3
    wrong = {"mcp_servers": [{"id": "lost", "url": "https://x.example.com", "oauth_connection": "gh:none"}]}
    with pytest.raises(SystemExit, match="MCP server 'lost': No connection 'gh:none'"):
        await config_file.apply(state, ConfigFile.model_validate(wrong))


async def test_sync_carries_servers_with_their_credentials_resealed(admin: Admin) -> None:
    state = admin.app.state.admin
    await config_file.apply(state, ConfigFile.model_validate(FILE))
    async with state.pool.connection() as conn:
        tables = await sync_doc.read_local(conn)
    assert list(tables).index("mcp_servers") > list(tables).index("connections")
    token = "sync-token-for-the-mcp-test"
    wire = sync_doc.for_transport(tables, state.crypto, token, sync_doc.etag(tables))
    assert "file-secret-000111" not in str(wire)
    with temp_database() as receiver_url:
        receiver = Crypto(admin.settings.master_key)
        async with await psycopg.AsyncConnection.connect(receiver_url) as conn, conn.transaction():
            await sync_doc.replace_local(conn, sync_doc.from_transport(wire, receiver, token))
        snapshot = await load_snapshot(receiver_url, receiver)
        assert snapshot.mcp_servers["docs"].headers == {"Authorization": "Bearer file-secret-000111"}
        assert snapshot.mcp_servers["gh-tools"].oauth_connection_id == "gh:main"
        assert snapshot.teams["filed-team"].mcp_access == {"docs": ("*",), "gh-tools": ("search_issues",)}
    # A document from before the MCP gateway (no mcp_servers) is still accepted.
    older = {**wire, "tables": {k: v for k, v in wire["tables"].items() if k != "mcp_servers"}}
    with temp_database() as receiver_url:
        async with await psycopg.AsyncConnection.connect(receiver_url) as conn, conn.transaction():
            await sync_doc.replace_local(conn, sync_doc.from_transport(older, receiver, token))


async def _follow(client: httpx.AsyncClient, answer: httpx.Response) -> str:
    assert answer.status_code == 303, (answer.status_code, answer.text[:400])
    return (await client.get(answer.headers["location"])).text


async def test_dashboard_page_creates_edits_grants_and_lists(admin: Admin) -> None:
    client = admin.client
    page = await client.get("/dashboard/mcp")
    assert page.status_code == 200 and "Add an MCP server" in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    shown = await _follow(client, await client.post("/dashboard/mcp/servers", data={
        "csrf_token": token, "id": "dash-tools", "name": "Dash tools", "transport": "http",
        "url": "https://dash-mcp.example.com/mcp", "credentials": "Authorization: Bearer dash-secret-123456789",
        "timeout_s": "8", "price": "0.5", "enabled": "on"}))
    assert "MCP server dash-tools created." in shown and "dash-secret-123456789" not in shown
    assert "Authorization: Bear…6789" in shown
    server = (await client.get("/api/mcp/servers/dash-tools")).json()
    assert (server["timeout_s"], server["price_per_call_usd"], server["enabled"]) == (8.0, 0.5, True)

    # Editing without new credentials keeps them; the unticked box disables the server.
    shown = await _follow(client, await client.post("/dashboard/mcp/servers/dash-tools", data={
        "csrf_token": token, "transport": "http", "name": "Dash", "url": "https://dash-mcp.example.com/mcp",
        "timeout_s": "9", "price": "0.5"}))
    assert "MCP server dash-tools saved." in shown
    server = (await client.get("/api/mcp/servers/dash-tools")).json()
    assert (server["name"], server["enabled"], list(server["headers"])) == ("Dash", False, ["Authorization"])
    refused = await _follow(client, await client.post("/dashboard/mcp/servers", data={
        "csrf_token": token, "id": "meta", "transport": "http", "url": "http://169.254.169.254/"}))
    assert "Not created:" in refused and "url refused" in refused

    shown = await _follow(client, await client.post("/dashboard/mcp/teams/beta", data={
        "csrf_token": token, "access": "dash-tools: *\nsearch: query, fetch\n"}))
    assert "MCP access of team beta saved." in shown
    assert (await client.get("/api/teams/beta")).json()["mcp_access"] == {"dash-tools": ["*"],
                                                                          "search": ["fetch", "query"]}
    bad = await _follow(client, await client.post("/dashboard/mcp/teams/beta", data={
        "csrf_token": token, "access": "no colon here"}))
    assert "Access not saved:" in bad
    shown = await _follow(client, await client.post("/dashboard/mcp/teams/beta", data={
        "csrf_token": token, "access": ""}))
    assert (await client.get("/api/teams/beta")).json()["mcp_access"] is None

    await _insert_calls(admin)
    listed = await client.get("/dashboard/mcp")
    assert "call-a1" not in listed.text and "key-a2" in listed.text and "tickets" in listed.text
    assert listed.text.count('class="mcp-outcome"') >= 4 and "timeout: timeout" in listed.text
    shown = await _follow(client, await client.post("/dashboard/mcp/servers/dash-tools/delete",
                                                    data={"csrf_token": token}))
    assert "MCP server dash-tools deleted." in shown
    actions = [a for a, _ in await _audit(admin, "dash-tools")]
    assert actions == ["mcp_servers.create", "mcp_servers.update", "mcp_servers.delete"]

"""The MCP gateway end to end: the official MCP client SDK → edge /mcp → router (McpGateway) →
MCP executor (McpUpstream) → mock tool servers built with the same SDK (tests/mocks/mcp_tools).

- each key sees only its allowed servers and tools, namespaced (two teams, a key narrowing its
  team's access, a team without access), in both protocol eras (legacy sessions and per-request);
- calls allowed and refused (MCP error -32003, an audit row gateway.refused.mcp_refused);
- credential injection: the tool server receives the gateway's secret header and never the
  client's OmniRoute key; nothing the client receives holds the tool server's secret (except the
  mock's own headers tool, which reports it back by design);
- tool_calls_per_minute exact with two routers (each behind its own edge), a team's and a key's;
- a tool server killed mid-call: a clean MCP error, and the session goes on;
- one mcp_calls row per call (outcome, sizes, hash, cost) and an audit row per call;
- an OAuth-protected tool server reached with an OAuth connection's token: a revoked token is
  refreshed once and the call made again; a refresh the IdP refuses is a clean upstream error."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from omniroute.devstack.stack import _wait_ready, free_port
from tests.e2e.routing_stack import RoutingStack, routing_stack
from tests.mocks.mcp_tools import McpHttpMock, stdio_command
from tests.mocks.oauth import OAuthServer

pytestmark = pytest.mark.xdist_group("mcp-gateway")

TOOL_SECRET = "tool-server-secret-7f3a9c"
STDIO_SECRET = "stdio-env-secret-41c2"
PACED_LIMIT = 4
KEY_LIMIT = 3
PRICE = Decimal("0.002")
SECRETS = {name: f"sk-omni-mcp-{name}-".ljust(32, "0") for name in
           ("a1", "b1", "b2", "none", "p1", "p2", "g1", "r1", "audit")}
MOCK_TOOLS = ["echo", "fail", "headers", "sleep"]


@dataclass
class McpStack:
    routing: RoutingStack
    edges: list[str]
    fragile: McpHttpMock

    def key_id(self, name: str) -> str:
        return self.routing.key_ids[name]

    def rows(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.routing.gateway.rows(query, params)


@pytest.fixture(scope="module")
def mcp_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpStack]:
    with McpHttpMock() as docs, McpHttpMock() as other, McpHttpMock() as fragile:
        servers = [
            {"id": "docs", "name": "Docs", "transport": "http", "url": docs.url,
             "headers": {"X-Tool-Secret": TOOL_SECRET}, "timeout_s": 10, "price_per_call_usd": str(PRICE)},
            {"id": "other", "name": "Other", "transport": "http", "url": other.url, "timeout_s": 10},
            {"id": "fragile", "name": "Fragile", "transport": "http", "url": fragile.url, "timeout_s": 20},
            # the same tool server with a 1 s timeout; and a stdio server the MCP executor runs
            {"id": "slow", "name": "Slow", "transport": "http", "url": other.url, "timeout_s": 1},
            {"id": "local", "name": "Local", "transport": "stdio", "command": stdio_command(),
             "env": {"LOCAL_SECRET": STDIO_SECRET}, "timeout_s": 20},
        ]
        config = {
            "mcp_servers": servers,
            "teams": [
                {"id": "alpha", "name": "Alpha", "mcp_access": {"docs": ["*"], "fragile": ["*"], "slow": ["sleep"],
                                                                "local": ["echo", "env"]}},
                {"id": "beta", "name": "Beta", "mcp_access": {"docs": ["echo"], "other": ["*"]}},
                # "secured" is created in the OAuth test (access that names no server grants nothing)
                {"id": "gamma", "name": "Gamma", "mcp_access": {"secured": ["*"]}},
                {"id": "paced", "name": "Paced", "mcp_access": {"docs": ["echo"]},
                 "limits": {"tool_calls_per_minute": PACED_LIMIT}},
            ],
            "keys": [
                {"name": "none", "key": SECRETS["none"]},                      # default team: no MCP
                {"name": "a1", "key": SECRETS["a1"], "team": "alpha"},
                {"name": "audit", "key": SECRETS["audit"], "team": "alpha"},
                {"name": "b1", "key": SECRETS["b1"], "team": "beta"},
                {"name": "b2", "key": SECRETS["b2"], "team": "beta", "mcp_access": {"other": ["*"]}},
                {"name": "g1", "key": SECRETS["g1"], "team": "gamma"},
                {"name": "r1", "key": SECRETS["r1"], "team": "beta", "limits": {"tool_calls_per_minute": KEY_LIMIT}},
                {"name": "p1", "key": SECRETS["p1"], "team": "paced"},
                {"name": "p2", "key": SECRETS["p2"], "team": "paced"},
            ],
        }
        with routing_stack(tmp_path_factory.mktemp("mcp-gateway"), config, ["none"], replicas=2) as routing:
            gateway = routing.gateway
            port = free_port()
            edge2 = gateway.stack.start_service("edge-mcp2", "omniroute_edge", env={
                "OMNIROUTE_PORT": str(port), "ROUTER_ADDR": routing.router_addrs[1]})
            try:
                _wait_ready(f"http://127.0.0.1:{port}/readyz", "edge-mcp2", 60, edge2.process)
                asyncio.run(_every_server_listed(gateway.url))
                yield McpStack(routing, [gateway.url, f"http://127.0.0.1:{port}"], fragile)
            finally:
                edge2.process.terminate()
                edge2.process.wait(15)


async def _every_server_listed(edge: str, timeout_s: float = 90) -> None:
    """The stdio server starts in the MCP executor after the config is applied, and a server not
    yet running is left out of listings: the tests start once every server answers. Listings that
    find it down count as its failures (three open its breaker for 30 s), hence a minute and more."""
    expected = {"docs", "fragile", "slow", "local"}   # what key a1's team may reach
    deadline = time.monotonic() + timeout_s
    while True:
        async with connect(edge, SECRETS["a1"]) as client:
            listed = {tool.name.split("__")[0] for tool in (await client.list_tools()).tools}
        if expected <= listed or time.monotonic() > deadline:
            assert expected <= listed, f"MCP servers still missing after {timeout_s:g} s: {expected - listed}"
            return
        await asyncio.sleep(1.0)


@asynccontextmanager
async def connect(edge: str, secret: str, mode: str = "legacy") -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {secret}"}, timeout=60)
    async with http, Client(streamable_http_client(f"{edge}/mcp", http_client=http), mode=mode) as client:
        yield client


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize(("key", "tools", "prompt_servers"), [
    ("a1", [f"docs__{t}" for t in MOCK_TOOLS] + [f"fragile__{t}" for t in MOCK_TOOLS]
     + ["local__echo", "local__env", "slow__sleep"], ["docs", "fragile"]),
    ("b1", ["docs__echo"] + [f"other__{t}" for t in MOCK_TOOLS], ["other"]),  # docs: the tool echo only
    ("b2", [f"other__{t}" for t in MOCK_TOOLS], ["other"]),        # the key narrows its team's access
    ("none", [], []),                                               # a team without mcp_access: default deny
])
async def test_each_key_lists_only_its_allowed_tools(mcp_stack: McpStack, mode: str, key: str,
                                                     tools: list[str], prompt_servers: list[str]) -> None:
    async with connect(mcp_stack.edges[0], SECRETS[key], mode) as client:
        listed = await client.list_tools()
        prompts = await client.list_prompts()
        resources = await client.list_resources()
    assert sorted(tool.name for tool in listed.tools) == tools
    assert sorted(p.name for p in prompts.prompts) == [f"{s}__greet" for s in prompt_servers]
    # every mock lists the same readme URI: listed once (the first allowed server's)
    assert [str(r.uri) for r in resources.resources] == (["mock://notes/readme"] if prompt_servers else [])


async def test_calls_allowed_and_refused(mcp_stack: McpStack) -> None:
    async with connect(mcp_stack.edges[0], SECRETS["b1"]) as client:
        answer = await client.call_tool("docs__echo", {"text": "hello tools"})
        assert (text_of(answer), answer.is_error) == ("hello tools", False)
        for name in ("docs__headers", "fragile__echo", "nosuch__echo"):
            with pytest.raises(MCPError) as refused:
                await client.call_tool(name, {})
            assert (refused.value.code, refused.value.message) == (
                -32003, f"tool {name} is not allowed for this API key")
            assert refused.value.data["kind"] == "refused"
        failed = await client.call_tool("other__fail", {"message": "bad input"})   # the tool's own error
        assert (failed.is_error, text_of(failed)) == (True, "Error executing tool fail: bad input")
        prompt = await client.get_prompt("other__greet", {"name": "Ada"})
        assert prompt.messages[0].content.text == "Say hello to Ada."   # type: ignore[union-attr]
    async with connect(mcp_stack.edges[1], SECRETS["b2"]) as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("docs__echo", {"text": "x"})
        assert refused.value.code == -32003
    deadline = time.monotonic() + 20
    expected = {("key:" + mcp_stack.key_id("b1"), "beta", "docs__headers"),
                ("key:" + mcp_stack.key_id("b1"), "beta", "fragile__echo"),
                ("key:" + mcp_stack.key_id("b1"), "beta", "nosuch__echo"),
                ("key:" + mcp_stack.key_id("b2"), "beta", "docs__echo")}
    while True:
        rows = mcp_stack.rows("SELECT actor, team_id, target FROM audit_log WHERE action = "
                              "'gateway.refused.mcp_refused'")
        if set(rows) >= expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert set(rows) == expected


async def test_the_gateways_credential_is_injected_and_the_clients_key_is_not(mcp_stack: McpStack) -> None:
    async with connect(mcp_stack.edges[0], SECRETS["a1"]) as client:
        reported = json.loads(text_of(await client.call_tool("docs__headers", {})))
        listed = await client.list_tools()
        echoed = await client.call_tool("docs__echo", {"text": "x"})
        unknown = await client.call_tool("docs__nosuchtool", {})     # the server's own answer
        with pytest.raises(MCPError) as refused:
            await client.call_tool("other__echo", {})
    assert reported["x-tool-secret"] == TOOL_SECRET
    assert all(SECRETS["a1"] not in value for value in reported.values())
    assert "authorization" not in reported
    # What the client received besides the headers tool's own report: no trace of the secret.
    assert unknown.is_error is True
    received = json.dumps([listed.model_dump(mode="json"), echoed.model_dump(mode="json"),
                           unknown.model_dump(mode="json"), str(refused.value), refused.value.data])
    assert TOOL_SECRET not in received


@pytest.mark.parametrize(("scope", "keys", "limit"), [
    ("team", ("p1", "p2"), PACED_LIMIT),     # two keys of one team, each through its own edge and router
    ("key", ("r1", "r1"), KEY_LIMIT),        # one key through both
])
async def test_tool_call_limits_are_exact_across_two_routers(mcp_stack: McpStack, scope: str,
                                                            keys: tuple[str, str], limit: int) -> None:
    async def one(index: int) -> str:
        edge, key = mcp_stack.edges[index % 2], keys[index % 2]
        async with connect(edge, SECRETS[key]) as client:
            try:
                await client.call_tool("docs__echo", {"text": f"call {index}"})
                return "ok"
            except MCPError as exc:
                assert exc.code == -32029 and exc.data["kind"] == "rate_limited", exc
                assert exc.message.startswith(f"tool call rate limit of the {scope} reached ({limit} per minute)")
                assert exc.data["retryAfterS"] > 0
                return "limited"

    outcomes = await asyncio.gather(*(one(i) for i in range(3 * limit)))
    assert sorted(outcomes) == ["limited"] * (2 * limit) + ["ok"] * limit


async def test_a_tool_server_killed_mid_call_is_a_clean_error_and_the_session_goes_on(
        mcp_stack: McpStack) -> None:
    async with connect(mcp_stack.edges[0], SECRETS["a1"]) as client:
        assert text_of(await client.call_tool("fragile__echo", {"text": "alive"})) == "alive"
        call = asyncio.create_task(client.call_tool("fragile__sleep", {"seconds": 15}))
        await asyncio.sleep(1.5)
        started = time.monotonic()
        mcp_stack.fragile.kill()
        with pytest.raises(MCPError) as failed:
            await asyncio.wait_for(call, 25)
        assert time.monotonic() - started < 10            # not held until the server's timeout
        assert (failed.value.code, failed.value.data["kind"]) == (-32050, "upstream_error")
        # the same session still works
        assert text_of(await client.call_tool("docs__echo", {"text": "still here"})) == "still here"
        with pytest.raises(MCPError) as down:
            await client.call_tool("fragile__echo", {"text": "x"})
        assert (down.value.code, down.value.data["kind"]) == (-32050, "upstream_error")
        # a third failure in a row marks it unhealthy: refused by the router without trying it,
        # and shown as such by the management API
        with pytest.raises(MCPError):
            await client.call_tool("fragile__echo", {"text": "x"})
        with pytest.raises(MCPError) as unhealthy:
            await client.call_tool("fragile__echo", {"text": "x"})
        assert unhealthy.value.code == -32050
        assert unhealthy.value.message.startswith("MCP server fragile is unhealthy; retry in ")
        assert unhealthy.value.data["retryAfterS"] > 20
        listed = [tool.name for tool in (await client.list_tools()).tools]
        assert "docs__echo" in listed and not [name for name in listed if name.startswith("fragile__")]
    shown = mcp_stack.routing.gateway.admin_client().get("/api/mcp/servers/fragile")
    assert shown.status_code == 200
    assert (shown.json()["health"]["status"], shown.json()["health"]["consecutiveFailures"]) == ("unhealthy", 3)


async def test_a_server_slower_than_its_timeout_is_a_timeout_error_and_the_session_goes_on(
        mcp_stack: McpStack) -> None:
    async with connect(mcp_stack.edges[0], SECRETS["a1"]) as client:
        started = time.monotonic()
        with pytest.raises(MCPError) as late:
            await client.call_tool("slow__sleep", {"seconds": 8})
        assert time.monotonic() - started < 5
        assert (late.value.code, late.value.data["kind"]) == (-32001, "timeout")
        assert text_of(await client.call_tool("docs__echo", {"text": "next"})) == "next"


async def test_a_stdio_server_gets_its_environment_through_the_gateway(mcp_stack: McpStack) -> None:
    async with connect(mcp_stack.edges[1], SECRETS["a1"], "auto") as client:
        assert text_of(await client.call_tool("local__echo", {"text": "over stdio"})) == "over stdio"
        assert text_of(await client.call_tool("local__env", {"name": "LOCAL_SECRET"})) == STDIO_SECRET
        with pytest.raises(MCPError) as refused:
            await client.call_tool("local__pid", {})
        assert refused.value.code == -32003


async def test_every_call_is_a_usage_row_and_an_audit_entry(mcp_stack: McpStack) -> None:
    args = {"text": "accounted"}
    async with connect(mcp_stack.edges[1], SECRETS["audit"]) as client:
        await client.call_tool("docs__echo", args)
        await client.call_tool("docs__fail", {"message": "nope"})
        with pytest.raises(MCPError):
            await client.call_tool("other__echo", args)
    key_id = mcp_stack.key_id("audit")
    deadline = time.monotonic() + 20
    while True:
        rows = mcp_stack.rows(
            "SELECT server_id, method, name, outcome, args_bytes, args_sha256, result_bytes > 0, cost_usd, team_id, "
            "request_id FROM mcp_calls WHERE key_id = %s ORDER BY started_at", (key_id,))
        if len(rows) >= 3 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    body = json.dumps(args, separators=(",", ":")).encode()
    assert [row[:9] for row in rows] == [
        ("docs", "tools/call", "echo", "ok", len(body), hashlib.sha256(body).hexdigest(), True, PRICE, "alpha"),
        ("docs", "tools/call", "fail", "tool_error", 18, hashlib.sha256(b'{"message":"nope"}').hexdigest(),
         True, PRICE, "alpha"),
        ("other", "tools/call", "echo", "refused", len(body), hashlib.sha256(body).hexdigest(), False,
         Decimal(0), "alpha"),
    ]
    request_ids = [row[9] for row in rows]
    while True:
        audited = mcp_stack.rows("SELECT request_id, actor, action FROM audit_log WHERE request_id = ANY(%s) "
                                 "AND action LIKE 'mcp.%%'", (request_ids,))
        if len(audited) >= 3 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert sorted(audited) == sorted((rid, f"key:{key_id}", "mcp.tools/call") for rid in request_ids)


OAUTH_PROVIDER = "pv-mcp-oauth"


async def test_an_oauth_servers_token_is_refreshed_once_when_refused(mcp_stack: McpStack) -> None:
    with OAuthServer() as idp:
        with McpHttpMock(introspect_url=f"{idp.url}/_oauth/introspect") as secured:
            idp.state.expires_in = 3600
            admin = mcp_stack.routing.gateway.admin_client()
            created = admin.post("/api/providers", json={
                "id": OAUTH_PROVIDER, "type": "openai-compatible", "base_url": f"{idp.url}/v1",
                "models": ["mock-text"], "settings": {"auth": "oauth", "oauth": {
                    "authorize_url": f"{idp.url}/authorize", "token_url": f"{idp.url}/token",
                    "client_id": "omniroute", "scopes": ["tools"],
                    "redirect_uri": "http://localhost:20128/callback"}}})
            assert created.status_code == 201, created.text
            started = admin.post(f"/api/oauth/{OAUTH_PROVIDER}/start", json={"connection": "main"}).json()
            redirect = httpx2.get(started["authUrl"], follow_redirects=False)
            back = parse_qs(urlsplit(redirect.headers["location"]).query)
            done = admin.get(f"/api/oauth/{OAUTH_PROVIDER}/callback",
                             params={"code": back["code"][0], "state": back["state"][0]})
            assert done.status_code == 200, done.text
            server = admin.post("/api/mcp/servers", json={
                "id": "secured", "transport": "http", "url": secured.url,
                "oauth_connection": f"{OAUTH_PROVIDER}:main", "timeout_s": 10})
            assert server.status_code == 201, server.text
            async with connect(mcp_stack.edges[0], SECRETS["g1"]) as client:
                deadline = time.monotonic() + 20     # the routers reload their snapshot (config.changed)
                while True:
                    try:
                        answer = await client.call_tool("secured__echo", {"text": "with a token"})
                        break
                    except MCPError as exc:
                        assert exc.code == -32003 and time.monotonic() < deadline, exc
                        await asyncio.sleep(0.2)
                assert (text_of(answer), answer.is_error) == ("with a token", False)
                before = idp.state.refreshes
                # The IdP revokes every token: the tool server answers 401, the router refreshes
                # once, the call is made again with the new token.
                httpx2.post(f"{idp.url}/_oauth/revoke")
                again = await client.call_tool("secured__echo", {"text": "after a refresh"})
                assert text_of(again) == "after a refresh"
                assert idp.state.refreshes == before + 1
                assert text_of(await client.call_tool("secured__echo", {"text": "kept"})) == "kept"
                assert idp.state.refreshes == before + 1
                # A refresh the IdP refuses: a clean MCP error naming it, the session goes on.
                idp.state.fail_refresh = True
                httpx2.post(f"{idp.url}/_oauth/revoke")
                with pytest.raises(MCPError) as refused:
                    await client.call_tool("secured__echo", {"text": "no token"})
                assert (refused.value.code, refused.value.data["kind"]) == (-32050, "upstream_error")
                assert "OAuth token refresh failed" in refused.value.message
            admin.delete("/api/mcp/servers/secured")
            admin.delete(f"/api/providers/{OAUTH_PROVIDER}")

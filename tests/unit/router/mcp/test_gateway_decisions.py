"""The router's MCP decisions (McpGatewayServicer) over in-memory fakes: the catalog a key sees
(default deny, team ∩ key, namespaced, cached per server until the TTL or a new snapshot),
calls allowed and refused with MCP's error codes, tool-call rate limits by key and team, health,
credentials injected, and one McpCallEvent per call."""

from __future__ import annotations

import dataclasses
import hashlib
from types import SimpleNamespace

import grpc
import orjson
import pytest
from redis import exceptions as redis_errors

from omniroute.config.snapshot import Connection
from omniroute.v1 import mcp_pb2
from omniroute_router.mcp import errors
from omniroute_router.mcp.access import ANY
from tests.unit.router.mcp.fakes import RpcError, gateway, server, snapshot

ALL = (ANY,)


@pytest.mark.parametrize(("team", "key", "tools"), [
    (None, None, []),                                                        # default deny
    ({}, None, []),
    ({"docs": ALL}, None, ["docs__delete", "docs__search"]),
    ({"docs": ALL, "files": ALL}, None, ["docs__delete", "docs__search", "files__read"]),
    ({"docs": ("search",)}, None, ["docs__search"]),
    ({"docs": ALL, "files": ALL}, {"files": ALL}, ["files__read"]),          # the key narrows
    ({"docs": ("search",)}, {"docs": ALL}, ["docs__search"]),                # never widens
    ({"docs": ("search",)}, {"docs": ("delete",)}, []),
    ({"docs": ALL}, {"files": ALL}, []),
    ({"docs": ALL}, {}, []),
])
async def test_the_tool_list_is_team_and_key_allow_lists_namespaced(
        team: dict[str, tuple[str, ...]] | None, key: dict[str, tuple[str, ...]] | None, tools: list[str]) -> None:
    gw = gateway(snapshot(team, key))
    items, unavailable = await gw.catalog()
    assert sorted(item["name"] for item in items) == tools
    assert unavailable == []


async def test_a_disabled_server_is_not_listed_nor_called() -> None:
    current = snapshot({"docs": ALL, "files": ALL},
                       servers={"docs": server("docs", enabled=False), "files": server("files")})
    gw = gateway(current)
    items, _ = await gw.catalog()
    assert [item["name"] for item in items] == ["files__read"]
    result = await gw.call("docs__search")
    assert result.error.code == errors.REFUSED and result.error.kind == "refused"
    assert gw.stub.calls == []


async def test_resources_keep_their_uris_and_prompts_are_namespaced() -> None:
    gw = gateway(snapshot({"docs": ALL, "files": ("read",)}))
    resources, _ = await gw.catalog(mcp_pb2.MCP_KIND_RESOURCES)
    assert [r["uri"] for r in resources] == ["docs://readme"]     # files allows only the tool "read"
    prompts, _ = await gw.catalog(mcp_pb2.MCP_KIND_PROMPTS)
    assert [p["name"] for p in prompts] == ["docs__summarise"]


async def test_listings_are_cached_per_server_until_the_snapshot_changes() -> None:
    gw = gateway(snapshot({"docs": ALL, "files": ALL}))
    await gw.catalog()
    await gw.catalog()
    assert sorted(gw.stub.lists) == [("docs", mcp_pb2.MCP_KIND_TOOLS), ("files", mcp_pb2.MCP_KIND_TOOLS)]
    gw.holder.current = dataclasses.replace(gw.holder.current)   # config.changed: a new snapshot
    await gw.catalog()
    assert len(gw.stub.lists) == 4


async def test_a_server_that_fails_to_list_is_named_unavailable_and_counted_against_its_health() -> None:
    gw = gateway(snapshot({"docs": ALL}))
    gw.stub.list_error = RpcError(grpc.StatusCode.INTERNAL, "connection refused")
    items, unavailable = await gw.catalog()
    assert (items, unavailable) == ([], ["docs"])
    assert gw.breakers.records == [("docs", False)]
    gw.stub.list_error = None
    gw.breakers.open.add("docs")                              # unhealthy: not even asked
    assert await gw.catalog() == ([], ["docs"])
    assert len(gw.stub.lists) == 1


async def test_a_server_marked_unhealthy_drops_out_of_the_listing_at_once_cached_or_not() -> None:
    gw = gateway(snapshot({"docs": ALL, "files": ALL}))
    assert [i["name"] for i in (await gw.catalog())[0]] == ["docs__search", "docs__delete", "files__read"]
    gw.breakers.open.add("files")
    assert await gw.catalog() == ([{"name": "docs__search", "inputSchema": {"type": "object"}},
                                   {"name": "docs__delete", "inputSchema": {"type": "object"}}], ["files"])
    assert len(gw.stub.lists) == 2                             # docs from the cache


async def test_an_allowed_call_is_forwarded_with_the_gateways_credentials_and_recorded() -> None:
    gw = gateway(snapshot({"docs": ("search",)}))
    args = b'{"q": "hello"}'
    result = await gw.call("docs__search", args=args)
    assert orjson.loads(result.result_json) == {"content": [{"type": "text", "text": "search ok"}], "isError": False}
    [forwarded] = gw.stub.calls
    assert (forwarded.name, forwarded.method, forwarded.arguments_json) == ("search", "tools/call", args)
    assert dict(forwarded.server.headers) == {"X-Api-Key": "secret-docs"}
    assert forwarded.server.url == "http://docs.test/mcp"
    [event] = gw.publisher.calls()
    assert (event.request_id, event.key_id, event.team_id, event.person_id) == ("req-1", "k1", "t1", "p1")
    assert (event.server_id, event.method, event.name, event.outcome) == ("docs", "tools/call", "search", "ok")
    assert (event.args_bytes, event.args_sha256) == (len(args), hashlib.sha256(args).hexdigest())
    assert event.result_bytes == len(result.result_json)
    assert event.price_per_call_usd == pytest.approx(0.01)
    assert event.client_session_id == "sess-1"
    assert gw.breakers.records == [("docs", True)]
    assert gw.publisher.refusals() == []


@pytest.mark.parametrize(("team", "key", "name"), [
    ({"docs": ("search",)}, None, "docs__delete"),       # not in the team's list
    ({"docs": ALL}, {"docs": ("search",)}, "docs__delete"),  # not in the key's
    ({"docs": ALL}, None, "files__read"),                # server not allowed
    (None, None, "docs__search"),                        # default deny
    ({"docs": ALL}, None, "nowhere__tool"),              # unknown server
    ({"docs": ALL}, None, "search"),                     # not namespaced
])
async def test_a_call_outside_the_allow_lists_is_refused_audited_and_recorded(
        team: dict[str, tuple[str, ...]] | None, key: dict[str, tuple[str, ...]] | None, name: str) -> None:
    gw = gateway(snapshot(team, key))
    result = await gw.call(name)
    assert result.WhichOneof("outcome") == "error"
    assert (result.error.code, result.error.kind) == (errors.REFUSED, "refused")
    assert result.error.message == f"tool {name} is not allowed for this API key"
    assert gw.stub.calls == []
    [event] = gw.publisher.calls()
    assert (event.outcome, event.error_message) == ("refused", result.error.message)
    [audit] = gw.publisher.refusals()
    assert (audit.actor, audit.team_id, audit.reason, audit.status) == ("key:k1", "t1", "mcp_refused", 403)
    assert (audit.route, audit.model, audit.service) == ("tools/call", name, "router")


async def test_an_unknown_key_is_refused() -> None:
    gw = gateway(snapshot({"docs": ALL}))
    result = await gw.call("docs__search", key_id="nobody")
    assert (result.error.code, result.error.message) == (errors.REFUSED, "this API key may not use MCP servers")


@pytest.mark.parametrize(("key_limit", "team_limit", "admitted", "scope"), [
    (2, None, 2, "key"),
    (None, 3, 3, "team"),
    (5, 2, 2, "team"),
    (1, 4, 1, "key"),
])
async def test_tool_calls_per_minute_by_key_and_team(key_limit: int | None, team_limit: int | None,
                                                    admitted: int, scope: str) -> None:
    gw = gateway(snapshot({"docs": ALL}, key_limits={"tool_calls_per_minute": key_limit} if key_limit else {},
                          team_limits={"tool_calls_per_minute": team_limit} if team_limit else {}))
    results = [await gw.call("docs__search", request_id=f"r{i}") for i in range(admitted + 2)]
    assert [r.WhichOneof("outcome") for r in results] == ["result_json"] * admitted + ["error"] * 2
    refused = results[-1].error
    limit = key_limit if scope == "key" else team_limit
    assert (refused.code, refused.kind, refused.retry_after_s) == (errors.RATE_LIMITED, "rate_limited", 42.0)
    assert refused.message == f"tool call rate limit of the {scope} reached ({limit} per minute); retry in 42.0 s"
    assert len(gw.stub.calls) == admitted
    assert [e.outcome for e in gw.publisher.calls()] == ["ok"] * admitted + ["refused"] * 2
    assert {a.reason for a in gw.publisher.refusals()} == {"mcp_rate_limited"}
    assert {a.status for a in gw.publisher.refusals()} == {429}


async def test_an_unhealthy_server_is_not_called() -> None:
    gw = gateway(snapshot({"docs": ALL}))
    gw.breakers.open.add("docs")
    result = await gw.call("docs__search")
    assert (result.error.code, result.error.kind) == (errors.UPSTREAM_ERROR, "upstream_error")
    assert result.error.message == "MCP server docs is unhealthy; retry in 30 s"
    assert gw.stub.calls == []
    assert [e.outcome for e in gw.publisher.calls()] == ["upstream_error"]


@pytest.mark.parametrize(("answer", "outcome", "code", "health"), [
    (mcp_pb2.McpCallResult(error=mcp_pb2.McpError(code=-32001, message="docs timed out", kind="timeout")),
     "timeout", -32001, False),
    (mcp_pb2.McpCallResult(error=mcp_pb2.McpError(code=-32050, message="docs is down", kind="upstream_error")),
     "upstream_error", -32050, False),
    (mcp_pb2.McpCallResult(error=mcp_pb2.McpError(code=-32602, message="unknown prompt", kind="rejected")),
     "tool_error", -32602, True),                          # the server answered: healthy
    (RpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline"), "timeout", errors.TIMEOUT, False),
    (RpcError(grpc.StatusCode.UNAVAILABLE, "no executor"), "upstream_error", errors.UPSTREAM_ERROR, None),
])
async def test_upstream_failures_are_clean_errors_counted_against_the_server(
        answer: object, outcome: str, code: int, health: bool | None) -> None:
    gw = gateway(snapshot({"docs": ALL}))
    gw.stub.answer = answer
    result = await gw.call("docs__search")
    assert result.error.code == code
    assert [e.outcome for e in gw.publisher.calls()] == [outcome]
    assert gw.breakers.records == ([] if health is None else [("docs", health)])


async def test_a_tools_own_error_is_a_result_recorded_as_tool_error_and_the_server_stays_healthy() -> None:
    gw = gateway(snapshot({"docs": ALL}))
    body = {"content": [{"type": "text", "text": "bad input"}], "isError": True}
    gw.stub.answer = mcp_pb2.McpCallResult(result_json=orjson.dumps(body))
    result = await gw.call("docs__search")
    assert orjson.loads(result.result_json) == body
    assert [e.outcome for e in gw.publisher.calls()] == ["tool_error"]
    assert gw.breakers.records == [("docs", True)]


async def test_resources_are_read_from_the_server_that_lists_them_and_prompts_by_name() -> None:
    gw = gateway(snapshot({"docs": ALL, "files": ALL}))
    gw.stub.answer = mcp_pb2.McpCallResult(result_json=b'{"contents": []}')
    await gw.call("file:///a", method="resources/read", args=b"")
    await gw.call("docs__summarise", method="prompts/get", args=b'{"topic": "x"}')
    assert [(c.server.server_id, c.method, c.name) for c in gw.stub.calls] == [
        ("files", "resources/read", "file:///a"), ("docs", "prompts/get", "summarise")]
    refused = await gw.call("file:///elsewhere", method="resources/read", args=b"")
    assert (refused.error.code, refused.error.message) == (
        errors.REFUSED, "resource file:///elsewhere is not allowed for this API key")


@pytest.mark.parametrize("expired", [False, True])
async def test_an_oauth_servers_token_is_sent_and_refreshed_once_on_a_401(expired: bool) -> None:
    servers = {"docs": server("docs", headers={}, oauth_connection_id="conn-1")}
    gw = gateway(snapshot({"docs": ALL}, servers=servers))
    gw.stub.expired_bearer = "tok-1" if expired else ""
    items, unavailable = await gw.catalog()
    assert ([i["name"] for i in items], unavailable) == (["docs__search", "docs__delete"], [])
    result = await gw.call("docs__search")
    assert result.WhichOneof("outcome") == "result_json"
    assert [c.server.headers["Authorization"] for c in gw.stub.calls] == [
        "Bearer tok-2" if expired else "Bearer tok-1"]
    assert gw.oauth.refreshes == (["conn-1"] if expired else [])   # the listing refreshed; the call reused it


async def test_a_token_the_server_still_refuses_after_one_refresh_is_an_upstream_error() -> None:
    servers = {"docs": server("docs", headers={}, oauth_connection_id="conn-1")}
    gw = gateway(snapshot({"docs": ALL}, servers=servers))
    gw.stub.expired_bearer = "tok-1"
    first = await gw.call("docs__search", request_id="r1")        # refreshed to tok-2: answered
    assert first.WhichOneof("outcome") == "result_json"
    gw.stub.expired_bearer = "tok-2"
    gw.oauth.refreshes.clear()
    second = await gw.call("docs__search", request_id="r2")
    assert second.WhichOneof("outcome") == "result_json"          # tok-2 refused → tok-3, once
    gw.stub.expired_bearer = "tok-3"
    gw.oauth.current = "tok-3"

    async def never_fresh(connection: Connection, *, rejected: str = "") -> SimpleNamespace:
        return SimpleNamespace(value="tok-3", error="")           # the IdP hands the same token back
    gw.oauth.access_token = never_fresh  # type: ignore[method-assign]
    third = await gw.call("docs__search", request_id="r3")
    assert (third.error.kind, third.error.message) == ("unauthorized", "HTTP 401")
    assert [c.server.headers["Authorization"] for c in gw.stub.calls[-2:]] == ["Bearer tok-3", "Bearer tok-3"]
    assert [e.outcome for e in gw.publisher.calls()] == ["ok", "ok", "upstream_error"]


async def test_redis_away_refuses_the_call_cleanly() -> None:
    gw = gateway(snapshot({"docs": ALL}, key_limits={"tool_calls_per_minute": 5}))

    async def away(*args: object, **kwargs: object) -> None:
        raise redis_errors.ConnectionError("connection refused")
    gw.limiter.admit_all = away  # type: ignore[assignment, method-assign]
    result = await gw.call("docs__search")
    assert (result.error.code, result.error.kind, result.error.message, result.error.retry_after_s) == (
        errors.UPSTREAM_ERROR, "unavailable", "the gateway's state store is unavailable", 1.0)
    assert gw.stub.calls == []
    assert [e.outcome for e in gw.publisher.calls()] == ["upstream_error"]

"""The edge's /mcp endpoint with the official MCP client, both protocol eras (the legacy
initialize handshake with an Mcp-Session-Id, and the per-request 2026 era): the key is checked
here (401 without a valid one, and it never reaches the router), handlers ask the router's
McpGateway (a stand-in here) and turn its answers into MCP objects and its refusals into MCP
errors with the router's code; a session is bound to the key that opened it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx2
import orjson
import pytest
import uvicorn
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.routing import Route

from omniroute.config.snapshot import ApiKey, ConfigSnapshot
from omniroute.devstack.stack import free_port
from omniroute.secrets import hash_api_key
from omniroute.settings import Settings
from omniroute.v1 import events_pb2, mcp_pb2
from omniroute_edge import mcp_endpoint

SECRET = "sk-edge-mcp-test"
TOOL = {"name": "docs__search", "description": "search", "inputSchema": {"type": "object"}}


class FakeGateway:
    """McpGateway as the router answers: one tool, one resource, one prompt; docs__delete refused."""

    def __init__(self) -> None:
        self.catalogs: list[mcp_pb2.McpCatalogRequest] = []
        self.calls: list[mcp_pb2.McpCallRequest] = []

    async def ListCatalog(self, request: mcp_pb2.McpCatalogRequest, timeout: float) -> mcp_pb2.McpCatalog:
        self.catalogs.append(request)
        items = {mcp_pb2.MCP_KIND_TOOLS: [TOOL],
                 mcp_pb2.MCP_KIND_RESOURCES: [{"uri": "mock://notes/readme", "name": "readme"}],
                 mcp_pb2.MCP_KIND_RESOURCE_TEMPLATES: [{"uriTemplate": "mock://notes/{n}", "name": "note"}],
                 mcp_pb2.MCP_KIND_PROMPTS: [{"name": "docs__greet", "arguments": [{"name": "name"}]}]}
        return mcp_pb2.McpCatalog(items_json=orjson.dumps(items.get(request.kind, [])))

    async def Call(self, request: mcp_pb2.McpCallRequest, timeout: float) -> mcp_pb2.McpCallResult:
        self.calls.append(request)
        if request.name == "docs__delete":
            return mcp_pb2.McpCallResult(error=mcp_pb2.McpError(
                code=-32003, message="tool docs__delete is not allowed for this API key", kind="refused"))
        if request.method == "resources/read":
            body: dict[str, Any] = {"contents": [{"uri": request.name, "text": "readme", "mimeType": "text/plain"}]}
        elif request.method == "prompts/get":
            args = orjson.loads(request.arguments_json)
            body = {"messages": [{"role": "user", "content": {"type": "text", "text": f"hello {args['name']}"}}]}
        else:
            body = {"content": [{"type": "text", "text": request.arguments_json.decode()}], "isError": False}
        return mcp_pb2.McpCallResult(result_json=orjson.dumps(body))


KEY = ApiKey(id="k1", name="k", enabled=True, allowed_models=None, limits={}, budget=None, expires_at=None)
OTHER = ApiKey(id="k2", name="k2", enabled=True, allowed_models=None, limits={}, budget=None, expires_at=None)


REVOKED = dataclasses.replace(KEY, id="k3", team_id="t9", revoked_at=datetime(2026, 1, 1, tzinfo=UTC))


class Published:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, subject: str, payload: bytes, *, msg_id: str, headers: dict[str, str] | None = None) -> None:
        self.sent.append((subject, payload))


@contextlib.asynccontextmanager
async def edge(publisher: Published | None = None) -> AsyncIterator[tuple[str, FakeGateway]]:
    gateway = FakeGateway()
    snapshot = ConfigSnapshot(keys_by_hash={hash_api_key(SECRET): KEY, hash_api_key(SECRET + "2"): OTHER,
                                            hash_api_key(SECRET + "3"): REVOKED},
                              keys_by_id={"k1": KEY, "k2": OTHER, "k3": REVOKED})
    manager = mcp_endpoint.session_manager()
    app = Starlette(routes=[Route(mcp_endpoint.PATH, mcp_endpoint.McpEndpoint(manager),
                                  methods=["GET", "POST", "DELETE"])])
    app.state.edge = SimpleNamespace(config=SimpleNamespace(current=snapshot), mcp=gateway, publisher=publisher,
                                     settings=Settings(env="unit"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    async with manager.run():
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}/mcp", gateway
        finally:
            server.should_exit = True
            await task


def client(url: str, mode: str, secret: str = SECRET) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {secret}"}, timeout=30)
    return Client(streamable_http_client(url, http_client=http), mode=mode)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_listing_calls_and_refusals_through_the_endpoint(mode: str) -> None:
    async with edge() as (url, gateway), client(url, mode) as mcp:
        tools = await mcp.list_tools()
        assert [t.name for t in tools.tools] == ["docs__search"]
        result = await mcp.call_tool("docs__search", {"q": "hello"})
        assert [c.text for c in result.content] == ['{"q":"hello"}']   # type: ignore[union-attr]
        assert result.is_error is False
        with pytest.raises(MCPError) as refused:
            await mcp.call_tool("docs__delete", {})
        assert (refused.value.code, refused.value.message) == (
            -32003, "tool docs__delete is not allowed for this API key")
        assert refused.value.data["kind"] == "refused"
        resources = await mcp.list_resources()
        assert [str(r.uri) for r in resources.resources] == ["mock://notes/readme"]
        read = await mcp.read_resource("mock://notes/readme")
        assert read.contents[0].text == "readme"   # type: ignore[union-attr]
        prompt = await mcp.get_prompt("docs__greet", {"name": "Ada"})
        assert prompt.messages[0].content.text == "hello Ada"   # type: ignore[union-attr]
        # after a refusal the session goes on
        assert (await mcp.call_tool("docs__search", {"q": 2})).is_error is False
    assert {c.key_id for c in gateway.calls} == {"k1"} and {c.key_id for c in gateway.catalogs} == {"k1"}
    assert all(SECRET not in str(c) for c in gateway.calls)
    assert [(c.method, c.name) for c in gateway.calls] == [
        ("tools/call", "docs__search"), ("tools/call", "docs__delete"), ("resources/read", "mock://notes/readme"),
        ("prompts/get", "docs__greet"), ("tools/call", "docs__search")]
    sessions = {c.client_session_id for c in gateway.calls}
    assert (len(sessions) == 1 and "" not in sessions) if mode == "legacy" else sessions == {""}


@pytest.mark.parametrize("secret", ["", "sk-unknown"])
async def test_a_missing_or_unknown_key_is_401_and_never_reaches_the_router(secret: str) -> None:
    async with edge() as (url, gateway):
        async with httpx2.AsyncClient() as http:
            headers = {"Authorization": f"Bearer {secret}"} if secret else {}
            answer = await http.post(url, headers={**headers, "Accept": "application/json, text/event-stream"},
                                     json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == 'Bearer realm="omniroute"'
        message = "Incorrect API key provided." if secret else (
            "You didn't provide an API key. Provide it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'.")
        assert answer.json() == {"jsonrpc": "2.0", "id": None, "error": {"code": -32001, "message": message}}
    assert gateway.catalogs == [] and gateway.calls == []


async def test_a_session_is_bound_to_the_key_that_opened_it() -> None:
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    accept = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
    async with edge() as (url, gateway), httpx2.AsyncClient(timeout=30) as http:
        opened = await http.post(url, json=initialize, headers={**accept, "Authorization": f"Bearer {SECRET}"})
        assert opened.status_code == 200
        session = opened.headers["mcp-session-id"]
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        other = await http.post(url, json=listing, headers={
            **accept, "Authorization": f"Bearer {SECRET}2", "Mcp-Session-Id": session})
        assert other.status_code == 404
        assert gateway.catalogs == []


async def test_a_revoked_key_is_401_and_an_audit_event() -> None:
    published = Published()
    async with edge(published) as (url, gateway), httpx2.AsyncClient() as http:
        answer = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers={
            "Authorization": f"Bearer {SECRET}3", "Accept": "application/json, text/event-stream"})
    assert answer.status_code == 401
    assert answer.json()["error"] == {"code": -32001, "message": "API key revoked"}
    [(subject, payload)] = published.sent
    event = events_pb2.AuditEvent.FromString(payload)
    assert subject == "unit.audit.refused"
    assert (event.actor, event.team_id, event.reason, event.status, event.route, event.service) == (
        "key:k3", "t9", "key_revoked", 401, "/mcp", "edge")
    assert gateway.catalogs == []

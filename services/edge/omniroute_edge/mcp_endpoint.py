"""The MCP endpoint (`/mcp`, issue 21): Streamable HTTP as the current MCP specification has it,
served by the official SDK (its low-level `Server` and session manager); the caller's OmniRoute
key is checked here like on every edge route and never goes further than the router. Every
handler asks the router's McpGateway, which decides (allow-lists, limits, health, the record)
and has the MCP executor reach the tool servers; the edge turns its answer back into MCP
objects, and its refusals into MCP errors.

Sessions: a client that opens one with the initialize handshake gets an `Mcp-Session-Id`; the
SDK keeps that session in this edge process and binds it to the key that opened it (another
key presenting the id gets 404). With several edge replicas, the load balancer must send a
session's requests to the replica that opened it (affinity on the Mcp-Session-Id header), see
docs/ARCHITECTURE.md; requests of the per-request protocol era (2026-07-28, no session) need
nothing."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import grpc
import mcp_types as types
import orjson
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from omniroute.v1 import mcp_pb2, mcp_pb2_grpc
from omniroute_edge import refusals
from omniroute_edge.auth import AuthError, authenticate
from omniroute_edge.state import EdgeState

log = logging.getLogger("omniroute.edge.mcp")

PATH = "/mcp"
KEY_SCOPE = "omniroute.key_id"       # the authenticated key's id, on the ASGI scope
ROUTER_UNAVAILABLE = -32050          # as the router's upstream errors: the gateway could not answer
INTERNAL_ERROR = types.INTERNAL_ERROR
_HEADROOM_S = 10.0                   # router deadline beyond the slowest server's timeout


def _state(ctx: ServerRequestContext[Any, Any]) -> tuple[EdgeState, Request]:
    request = ctx.request
    if not isinstance(request, Request):  # only the HTTP transport serves this Server
        raise MCPError(INTERNAL_ERROR, "no HTTP request behind this MCP message")
    return request.app.state.edge, request


def _stub(state: EdgeState) -> mcp_pb2_grpc.McpGatewayStub:
    if state.mcp is None:
        raise MCPError(ROUTER_UNAVAILABLE, "the MCP gateway is not available")
    return state.mcp


def _deadline(state: EdgeState) -> float:
    servers = state.config.current.mcp_servers.values()
    return max((s.timeout_s for s in servers), default=30.0) + _HEADROOM_S


def _router_failure(exc: grpc.aio.AioRpcError) -> MCPError:
    if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return MCPError(ROUTER_UNAVAILABLE, "the gateway's router is unavailable")
    log.error("router failed an MCP request: %s %s", exc.code(), exc.details())
    return MCPError(INTERNAL_ERROR, "internal error")


async def _catalog(ctx: ServerRequestContext[Any, Any], kind: int) -> list[dict[str, Any]]:
    state, request = _state(ctx)
    try:
        catalog = await _stub(state).ListCatalog(mcp_pb2.McpCatalogRequest(
            request_id=uuid.uuid4().hex, key_id=request.scope[KEY_SCOPE], kind=mcp_pb2.McpKind.Name(kind)),
            timeout=_deadline(state))
    except grpc.aio.AioRpcError as exc:
        raise _router_failure(exc) from exc
    if catalog.unavailable_servers:
        log.info("MCP listing without unavailable servers %s", list(catalog.unavailable_servers))
    items = orjson.loads(catalog.items_json or b"[]")
    return [item for item in items if isinstance(item, dict)]


async def _call(ctx: ServerRequestContext[Any, Any], method: str, name: str,
                arguments: dict[str, Any] | None) -> dict[str, Any]:
    """The router's answer to one tools/call, resources/read or prompts/get: the MCP result
    object, or its refusal / the upstream's failure raised as an MCP error."""
    state, request = _state(ctx)
    call = mcp_pb2.McpCallRequest(request_id=uuid.uuid4().hex, key_id=request.scope[KEY_SCOPE], method=method,
                                  name=name, arguments_json=orjson.dumps(arguments) if arguments is not None else b"",
                                  client_session_id=request.headers.get("mcp-session-id", ""))
    try:
        result = await _stub(state).Call(call, timeout=_deadline(state))
    except grpc.aio.AioRpcError as exc:
        raise _router_failure(exc) from exc
    if result.WhichOneof("outcome") == "error":
        data: dict[str, Any] = {"kind": result.error.kind, "requestId": call.request_id}
        if result.error.retry_after_s:
            data["retryAfterS"] = round(result.error.retry_after_s, 3)
        raise MCPError(result.error.code or INTERNAL_ERROR, result.error.message, data)
    body = orjson.loads(result.result_json or b"{}")
    if not isinstance(body, dict):
        raise MCPError(INTERNAL_ERROR, "the tool server's answer is not an MCP result")
    return body


async def list_tools(ctx: ServerRequestContext[Any, Any],
                     params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[types.Tool.model_validate(i)
                                        for i in await _catalog(ctx, mcp_pb2.MCP_KIND_TOOLS)])


async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> types.CallToolResult:
    return types.CallToolResult.model_validate(await _call(ctx, "tools/call", params.name, params.arguments))


async def list_resources(ctx: ServerRequestContext[Any, Any],
                         params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
    return types.ListResourcesResult(resources=[types.Resource.model_validate(i)
                                                for i in await _catalog(ctx, mcp_pb2.MCP_KIND_RESOURCES)])


async def list_resource_templates(ctx: ServerRequestContext[Any, Any],
                                  params: types.PaginatedRequestParams | None) -> types.ListResourceTemplatesResult:
    items = await _catalog(ctx, mcp_pb2.MCP_KIND_RESOURCE_TEMPLATES)
    return types.ListResourceTemplatesResult(resource_templates=[types.ResourceTemplate.model_validate(i)
                                                                for i in items])


async def read_resource(ctx: ServerRequestContext[Any, Any],
                        params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
    return types.ReadResourceResult.model_validate(await _call(ctx, "resources/read", str(params.uri), None))


async def list_prompts(ctx: ServerRequestContext[Any, Any],
                       params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
    return types.ListPromptsResult(prompts=[types.Prompt.model_validate(i)
                                            for i in await _catalog(ctx, mcp_pb2.MCP_KIND_PROMPTS)])


async def get_prompt(ctx: ServerRequestContext[Any, Any],
                     params: types.GetPromptRequestParams) -> types.GetPromptResult:
    return types.GetPromptResult.model_validate(await _call(ctx, "prompts/get", params.name, params.arguments))


def mcp_server() -> Server[Any]:
    return Server("omniroute", version="1.0", title="OmniRoute MCP gateway",
                  instructions="The organisation's MCP tool servers, one endpoint: tools are named "
                               "<server>__<tool>.",
                  on_list_tools=list_tools, on_call_tool=call_tool, on_list_resources=list_resources,
                  on_list_resource_templates=list_resource_templates, on_read_resource=read_resource,
                  on_list_prompts=list_prompts, on_get_prompt=get_prompt)


def session_manager() -> StreamableHTTPSessionManager:
    # No DNS-rebinding check: the endpoint is reached by any host name the deployment gives the
    # edge, and every request carries an OmniRoute key (no ambient browser credential to abuse).
    return StreamableHTTPSessionManager(
        app=mcp_server(), security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False))


class McpEndpoint:
    """ASGI: the key check, then the SDK's Streamable HTTP transport."""

    def __init__(self, manager: StreamableHTTPSessionManager) -> None:
        self.manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        state: EdgeState = request.app.state.edge
        try:
            key = authenticate(request, state.config.current, required=True)
        except AuthError as exc:
            refused_id = uuid.uuid4().hex
            refusals.log.warning("refused %s %s: 401 invalid_api_key: %s: %s (key=%s request_id=%s)",
                                 request.method, request.url.path, exc.reason, exc.message,
                                 exc.key.id if exc.key else "-", refused_id)
            refusals.audit_key_refusal(request, state, exc, request_id=refused_id)
            response = JSONResponse({"jsonrpc": "2.0", "id": None,
                                     "error": {"code": -32001, "message": exc.message}},
                                    status_code=401, headers={"WWW-Authenticate": 'Bearer realm="omniroute"'})
            await response(scope, receive, send)
            return
        assert key is not None  # required=True
        # The SDK binds a session to the credential that opened it: the key's id (not its secret).
        scope["user"] = AuthenticatedUser(AccessToken(token=key.id, client_id=key.id, scopes=[]))
        scope[KEY_SCOPE] = key.id
        await self.manager.asgi_app(scope, receive, send)

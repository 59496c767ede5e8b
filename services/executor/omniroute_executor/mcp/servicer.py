"""McpUpstream: list a server's tools / resources / templates / prompts, and make one call
(tools/call, resources/read, prompts/get), each within the server's `timeout_s`. A call's
failure is an `McpError` in the answer (kinds in `failures`); a list's failure is a gRPC status
(DEADLINE_EXCEEDED: timeout, UNAUTHENTICATED: HTTP 401, FAILED_PRECONDITION: the server failed
— never UNAVAILABLE, which the router reads as "the MCP executor itself is down")."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import grpc
import orjson
from mcp import ClientSession
from mcp_types import PaginatedRequestParams
from pydantic import BaseModel

from omniroute import ssrf, telemetry
from omniroute.v1 import mcp_pb2, mcp_pb2_grpc
from omniroute_executor.mcp.failures import Failure, address_refused, classify, leaves
from omniroute_executor.mcp.sessions import HttpStatus, StdioProcess, StdioServers, http_session

log = logging.getLogger("omniroute.executor.mcp")
_tracer = telemetry.tracer("omniroute.executor")
T = TypeVar("T")
MAX_PAGES = 50  # a paginating server that never ends cannot hold a list forever
_LIST_STATUS = {"timeout": grpc.StatusCode.DEADLINE_EXCEEDED, "unauthorized": grpc.StatusCode.UNAUTHENTICATED}


def dump(model: BaseModel) -> dict[str, Any]:
    """An MCP object as its wire JSON (camelCase, unset fields left out)."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


class UpstreamFailed(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class McpUpstreamServicer(mcp_pb2_grpc.McpUpstreamServicer):
    def __init__(self, stdio: StdioServers | None = None, *, allow_private: bool | None = None) -> None:
        self._stdio = stdio or StdioServers()
        self._allow_private = ssrf.private_allowed() if allow_private is None else allow_private

    async def aclose(self) -> None:
        await self._stdio.aclose()

    async def List(self, request: mcp_pb2.McpListRequest,
                   context: grpc.aio.ServicerContext[Any, Any]) -> mcp_pb2.McpListResult:
        with telemetry.call_span(_tracer, "executor.mcp.list",
                                 telemetry.context_from_metadata(context.invocation_metadata())) as span:
            span.set_attribute("omniroute.request_id", request.request_id)
            span.set_attribute("omniroute.mcp.server", request.server.server_id)
            try:
                items = await self._run(request.server, lambda session: list_items(session, request.kind))
            except UpstreamFailed as failed:
                span.set_attribute("omniroute.mcp.outcome", failed.failure.kind)
                log.warning("listing MCP server %s failed: %s", request.server.server_id, failed.failure.message)
                status = _LIST_STATUS.get(failed.failure.kind, grpc.StatusCode.FAILED_PRECONDITION)
                await context.abort(status, failed.failure.message)
            return mcp_pb2.McpListResult(items_json=orjson.dumps(items))

    async def Call(self, request: mcp_pb2.McpUpstreamCall,
                   context: grpc.aio.ServicerContext[Any, Any]) -> mcp_pb2.McpCallResult:
        try:
            arguments = orjson.loads(request.arguments_json) if request.arguments_json else None
        except orjson.JSONDecodeError:
            return Failure("rejected", -32602, "the arguments are not JSON").answer()
        if arguments is not None and not isinstance(arguments, dict):
            return Failure("rejected", -32602, "the arguments must be a JSON object").answer()
        with telemetry.call_span(_tracer, "executor.mcp.call",
                                 telemetry.context_from_metadata(context.invocation_metadata())) as span:
            span.set_attribute("omniroute.request_id", request.request_id)
            span.set_attribute("omniroute.mcp.server", request.server.server_id)
            span.set_attribute("omniroute.mcp.method", request.method)
            try:
                result = await self._run(request.server,
                                         lambda session: call(session, request.method, request.name, arguments))
            except UpstreamFailed as failed:
                span.set_attribute("omniroute.mcp.outcome", failed.failure.kind)
                log.warning("MCP %s %s on %s failed: %s", request.method, request.name,
                            request.server.server_id, failed.failure.message)
                return failed.failure.answer()
            span.set_attribute("omniroute.mcp.outcome", "tool_error" if result.get("isError") else "ok")
            return mcp_pb2.McpCallResult(result_json=orjson.dumps(result))

    async def _run(self, target: mcp_pb2.McpServerTarget,
                   operation: Callable[[ClientSession], Awaitable[T]]) -> T:
        """`operation` on a session to `target` within its timeout (connecting included)."""
        timeout_s = target.timeout_s if target.timeout_s > 0 else 30.0
        status = HttpStatus()
        process: StdioProcess | None = None
        if target.transport != "stdio":
            # The admin refuses such URLs already; this also covers rows written around it, as
            # the provider executors check every call.
            refused = ssrf.refusal(target.url, allow_private=self._allow_private)
            if refused:
                raise UpstreamFailed(address_refused(target.server_id, refused))
        try:
            with anyio.fail_after(timeout_s):
                if target.transport == "stdio":
                    process, session = await self._stdio.session(target)
                    return await operation(session)
                async with http_session(target, status, allow_private=self._allow_private) as session:
                    return await operation(session)
        except UpstreamFailed:
            raise
        except Exception as exc:
            own = [leaf for leaf in leaves(exc) if isinstance(leaf, UpstreamFailed)]
            if own:  # our own refusal, wrapped in the SDK's task groups on the way out
                raise own[0] from exc
            failure = classify(exc, target.server_id, status=status.last, timeout_s=timeout_s)
            if process is not None and failure.kind == "upstream_error":
                # It died (or never started): the next call gets a fresh process. A timeout
                # leaves it be: other calls may be running on it.
                await self._stdio.forget(process)
            raise UpstreamFailed(failure) from exc


async def list_items(session: ClientSession, kind: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        params = PaginatedRequestParams(cursor=cursor) if cursor else None
        page: Any
        if kind == mcp_pb2.MCP_KIND_TOOLS:
            page = await session.list_tools(params=params)
            items += [dump(tool) for tool in page.tools]
        elif kind == mcp_pb2.MCP_KIND_RESOURCES:
            page = await session.list_resources(params=params)
            items += [dump(resource) for resource in page.resources]
        elif kind == mcp_pb2.MCP_KIND_RESOURCE_TEMPLATES:
            page = await session.list_resource_templates(params=params)
            items += [dump(template) for template in page.resource_templates]
        elif kind == mcp_pb2.MCP_KIND_PROMPTS:
            page = await session.list_prompts(params=params)
            items += [dump(prompt) for prompt in page.prompts]
        else:
            raise UpstreamFailed(Failure("rejected", -32602, f"unknown list kind {kind}"))
        cursor = page.next_cursor
        if not cursor:
            break
    return items


async def call(session: ClientSession, method: str, name: str,
               arguments: dict[str, Any] | None) -> dict[str, Any]:
    if method == "tools/call":
        return dump(await session.call_tool(name, arguments or {}))
    if method == "resources/read":
        return dump(await session.read_resource(name))
    if method == "prompts/get":
        prompt_arguments = {key: value if isinstance(value, str) else orjson.dumps(value).decode()
                            for key, value in (arguments or {}).items()}
        return dump(await session.get_prompt(name, prompt_arguments))
    raise UpstreamFailed(Failure("rejected", -32601, f"unknown MCP method {method!r}"))

"""McpGateway: the router's decisions for the edge's MCP endpoint. ListCatalog merges what each
of the key's servers lists (cached per server, `catalog.py`), filtered by the allow-lists and
namespaced; Call checks the allow-list, the tool-call rate limits (key and team, one atomic
admission across replicas) and the server's health, forwards to the MCP executor with the
gateway's credentials, and records the call."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import orjson
import redis.asyncio as redis

from omniroute.config.snapshot import ApiKey, ConfigSnapshot, McpServer
from omniroute.config.watcher import SnapshotHolder
from omniroute.shared_state.mcp_health import MCP_BREAKER_PROFILE, McpBreakers
from omniroute.shared_state.ratelimit import Limits, RateLimiter
from omniroute.v1 import mcp_pb2, mcp_pb2_grpc
from omniroute_router.mcp import access as mcp_access
from omniroute_router.mcp import errors
from omniroute_router.mcp.catalog import CatalogCache, Items
from omniroute_router.mcp.record import CallRecord, McpRecorder
from omniroute_router.mcp.upstream import McpUpstreamClient, deadline, oauth_connection, target
from omniroute_router.selection.oauth_tokens import OAuthTokens

log = logging.getLogger("omniroute.router.mcp")

LIMIT_NAME = "tool_calls_per_minute"
NAMED_KINDS = (mcp_pb2.MCP_KIND_TOOLS, mcp_pb2.MCP_KIND_PROMPTS)   # namespaced by server
_CALL_KINDS = {"tools/call": mcp_pb2.MCP_KIND_TOOLS, "prompts/get": mcp_pb2.MCP_KIND_PROMPTS,
               "resources/read": mcp_pb2.MCP_KIND_RESOURCES}
# An upstream McpError of these kinds is the server failing (its health); others (a bad
# argument, an unknown name) are the caller's.
_SERVER_FAILURES = frozenset({"upstream_error", "timeout"})


class UpstreamFailure(Exception):
    def __init__(self, kind: str, message: str, *, blame_server: bool) -> None:
        super().__init__(message)
        self.kind = kind
        self.blame_server = blame_server


def tool_call_limits(snapshot: ConfigSnapshot, key: ApiKey) -> list[tuple[str, Limits]]:
    """The scopes a tool call is counted in: mcp-key:<id> and mcp-team:<id>, those with a limit."""
    scopes = []
    team = snapshot.teams.get(key.team_id)
    for scope, limits in ((f"mcp-key:{key.id}", key.limits),
                          (f"mcp-team:{key.team_id}", team.limits if team else {})):
        per_minute = Limits.of({"rpm": (limits or {}).get(LIMIT_NAME)})
        if per_minute.rpm > 0:
            scopes.append((scope, per_minute))
    return scopes


def _item_name(kind: int, item: dict[str, Any]) -> str:
    if kind == mcp_pb2.MCP_KIND_RESOURCES:
        return str(item.get("uri", ""))
    if kind == mcp_pb2.MCP_KIND_RESOURCE_TEMPLATES:
        return str(item.get("uriTemplate", ""))
    return str(item.get("name", ""))


class McpGatewayServicer(mcp_pb2_grpc.McpGatewayServicer):
    def __init__(self, config: SnapshotHolder, upstream: McpUpstreamClient, limiter: RateLimiter,
                 breakers: McpBreakers, recorder: McpRecorder, oauth: OAuthTokens | None = None,
                 catalogs: CatalogCache | None = None) -> None:
        self._config = config
        self._upstream = upstream
        self._limiter = limiter
        self._breakers = breakers
        self._recorder = recorder
        self._oauth = oauth
        self._catalogs = catalogs or CatalogCache()

    # ---- listing -------------------------------------------------------------------------

    async def ListCatalog(self, request: mcp_pb2.McpCatalogRequest,
                          context: grpc.aio.ServicerContext[Any, Any]) -> mcp_pb2.McpCatalog:
        snapshot = self._config.current
        key = snapshot.keys_by_id.get(request.key_id)
        if key is None or not key.usable():
            return mcp_pb2.McpCatalog(items_json=b"[]")
        allowed = mcp_access.effective(snapshot, key)
        # An unhealthy server is left out at once, its cached list too (one Redis read for all).
        health = await self._breakers.view(sorted(allowed))
        server_ids = sorted(sid for sid in allowed if health[sid].usable)
        lists = await asyncio.gather(*(self._server_items(snapshot, snapshot.mcp_servers[sid], request.kind,
                                                          request.request_id) for sid in server_ids))
        items: list[dict[str, Any]] = []
        unavailable = sorted(sid for sid in allowed if not health[sid].usable)
        seen: set[str] = set()  # a URI two servers list is read from the first (resources/read)
        for server_id, listed in zip(server_ids, lists, strict=True):
            if listed is None:
                unavailable.append(server_id)
                continue
            for item in listed:
                name = _item_name(request.kind, item)
                if not mcp_access.admits(allowed, server_id, name):
                    continue
                if request.kind in NAMED_KINDS:
                    item = {**item, "name": mcp_access.namespaced(server_id, name)}
                elif name in seen:
                    continue
                seen.add(name)
                items.append(item)
        return mcp_pb2.McpCatalog(items_json=orjson.dumps(items), unavailable_servers=unavailable)

    async def _server_items(self, snapshot: ConfigSnapshot, server: McpServer, kind: int,
                            request_id: str) -> Items | None:
        """One server's list (cached), or None when it is unhealthy or failed to list."""
        cached = self._catalogs.peek(snapshot, server.id, kind)
        if cached is not None:
            return cached
        [state] = (await self._breakers.view([server.id])).values()
        if not state.usable:
            return None

        async def list_upstream() -> Items:
            bearer = await self._bearer(snapshot, server)
            listing = mcp_pb2.McpListRequest(request_id=request_id, server=target(server, bearer=bearer),
                                             kind=mcp_pb2.McpKind.Name(kind))
            try:
                result = await self._upstream.stub.List(listing, timeout=deadline(server))
            except grpc.aio.AioRpcError as exc:
                # An OAuth server's 401: its token refreshed once, the listing made again.
                if exc.code() != grpc.StatusCode.UNAUTHENTICATED or not bearer:
                    raise
                bearer = await self._bearer(snapshot, server, rejected=bearer)
                listing.server.CopyFrom(target(server, bearer=bearer))
                result = await self._upstream.stub.List(listing, timeout=deadline(server))
            items = orjson.loads(result.items_json or b"[]")
            return [item for item in items if isinstance(item, dict)]

        try:
            items = await self._catalogs.get(snapshot, server.id, kind, list_upstream)
        except (grpc.aio.AioRpcError, UpstreamFailure) as exc:
            blame = not isinstance(exc, grpc.aio.AioRpcError) or exc.code() != grpc.StatusCode.UNAVAILABLE
            log.warning("MCP server %s could not be listed: %s", server.id,
                        exc.details() if isinstance(exc, grpc.aio.AioRpcError) else exc)
            if blame:
                await self._breakers.record(server.id, False, MCP_BREAKER_PROFILE)
            return None
        return items

    # ---- calls ---------------------------------------------------------------------------

    async def Call(self, request: mcp_pb2.McpCallRequest,
                   context: grpc.aio.ServicerContext[Any, Any]) -> mcp_pb2.McpCallResult:
        snapshot = self._config.current
        key = snapshot.keys_by_id.get(request.key_id)
        record = CallRecord(request=request, key=key)
        try:
            return await self._call(snapshot, key, record)
        except redis.RedisError as exc:
            # Limits and health live in Redis: without it no call is admitted (as model calls).
            log.warning("MCP %s %s refused: the state store is unavailable (%s)", request.method, request.name, exc)
            self._recorder.finished(record, "upstream_error", error="state store unavailable")
            return errors.error("unavailable", errors.UPSTREAM_ERROR, "the gateway's state store is unavailable",
                                1.0)
        except Exception:
            log.exception("MCP %s %s failed on an internal error", request.method, request.name)
            self._recorder.finished(record, "upstream_error", error="internal error")
            return errors.error("internal", errors.INTERNAL, "internal error")

    async def _call(self, snapshot: ConfigSnapshot, key: ApiKey | None,
                    record: CallRecord) -> mcp_pb2.McpCallResult:
        request = record.request
        kind = _CALL_KINDS.get(request.method)
        if key is None or not key.usable():
            return self._refuse(record, "refused", errors.REFUSED, "this API key may not use MCP servers")
        if kind is None:
            return self._refuse(record, "refused", errors.REFUSED, f"method {request.method} is not served")
        allowed = mcp_access.effective(snapshot, key)
        if kind == mcp_pb2.MCP_KIND_RESOURCES:
            server_id = await self._resource_server(snapshot, allowed, request.name, request.request_id)
            own = request.name
        else:
            parts = mcp_access.split(request.name)
            server_id, own = parts if parts else ("", request.name)
        record.server_id, record.name = server_id, own
        if not server_id or not mcp_access.admits(allowed, server_id, own):
            what = "resource" if kind == mcp_pb2.MCP_KIND_RESOURCES else request.method.split("/")[0][:-1]
            return self._refuse(record, "refused", errors.REFUSED,
                                f"{what} {request.name} is not allowed for this API key")
        server = snapshot.mcp_servers[server_id]
        record.price_per_call_usd = float(server.price_per_call_usd or 0)

        admissions = await self._limiter.admit_all(tool_call_limits(snapshot, key), request.request_id)
        refusing = next((i for i, a in enumerate(admissions) if not a.allowed), None)
        if refusing is not None:
            scope = "team" if tool_call_limits(snapshot, key)[refusing][0].startswith("mcp-team:") else "key"
            limit = admissions[refusing].limits.rpm
            retry = max((a.retry_after_s for a in admissions), default=0.0)
            return self._refuse(record, "rate_limited", errors.RATE_LIMITED,
                                f"tool call rate limit of the {scope} reached ({limit} per minute); "
                                f"retry in {retry:.1f} s", retry_after_s=retry)

        health = await self._breakers.try_pass(server.id, deadline(server))
        if not health.usable:
            message = f"MCP server {server.id} is unhealthy; retry in {health.retry_after_s:.0f} s"
            self._recorder.finished(record, "upstream_error", error=message)
            return errors.error("upstream_error", errors.UPSTREAM_ERROR, message, health.retry_after_s)
        return await self._forward(snapshot, server, record)

    async def _forward(self, snapshot: ConfigSnapshot, server: McpServer,
                       record: CallRecord) -> mcp_pb2.McpCallResult:
        request = record.request
        try:
            result = await self._upstream_call(snapshot, server, record)
        except UpstreamFailure as failure:
            if failure.blame_server:
                await self._breakers.record(server.id, False, MCP_BREAKER_PROFILE)
            outcome = "timeout" if failure.kind == "timeout" else "upstream_error"
            self._recorder.finished(record, outcome, error=str(failure))
            code = errors.TIMEOUT if failure.kind == "timeout" else errors.UPSTREAM_ERROR
            return errors.error(failure.kind, code, str(failure))
        if result.WhichOneof("outcome") == "error":
            failed = result.error.kind in _SERVER_FAILURES
            await self._breakers.record(server.id, not failed, MCP_BREAKER_PROFILE)
            # The server's own JSON-RPC error (kind rejected: an unknown prompt, bad arguments) is
            # an answer, recorded as the tool's error; the rest is the upstream failing.
            outcome = {"timeout": "timeout", "rejected": "tool_error"}.get(result.error.kind, "upstream_error")
            self._recorder.finished(record, outcome, error=result.error.message)
            return result
        await self._breakers.record(server.id, True, MCP_BREAKER_PROFILE)
        outcome = "ok"
        if request.method == "tools/call":
            body = orjson.loads(result.result_json or b"{}")
            if isinstance(body, dict) and body.get("isError"):
                outcome = "tool_error"
        self._recorder.finished(record, outcome, result_bytes=len(result.result_json))
        return result

    async def _upstream_call(self, snapshot: ConfigSnapshot, server: McpServer,
                             record: CallRecord) -> mcp_pb2.McpCallResult:
        """The executor's answer; an OAuth server's 401 (kind unauthorized) is tried once more
        with a refreshed token."""
        request = record.request
        bearer = await self._bearer(snapshot, server)
        for attempt in (1, 2):
            call = mcp_pb2.McpUpstreamCall(request_id=request.request_id, server=target(server, bearer=bearer),
                                           method=request.method, name=record.name,
                                           arguments_json=request.arguments_json)
            try:
                result = await self._upstream.stub.Call(call, timeout=deadline(server))
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise UpstreamFailure("timeout", f"MCP server {server.id} did not answer in time",
                                          blame_server=True) from exc
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    raise UpstreamFailure("upstream_error", "the MCP executor is unavailable",
                                          blame_server=False) from exc
                raise UpstreamFailure("upstream_error", f"MCP server {server.id} failed: {exc.details()}",
                                      blame_server=True) from exc
            unauthorized = result.WhichOneof("outcome") == "error" and result.error.kind == "unauthorized"
            if not (unauthorized and attempt == 1 and server.oauth_connection_id and bearer):
                return result
            bearer = await self._bearer(snapshot, server, rejected=bearer)
        return result

    async def _bearer(self, snapshot: ConfigSnapshot, server: McpServer, *, rejected: str = "") -> str:
        """The OAuth connection's access token (refreshed when stale or `rejected`), else ""."""
        if not server.oauth_connection_id or self._oauth is None:
            return ""
        connection = oauth_connection(snapshot, server.oauth_connection_id)
        if connection is None:
            raise UpstreamFailure("upstream_error", f"MCP server {server.id}: its OAuth connection is gone",
                                  blame_server=False)
        token = await self._oauth.access_token(connection, rejected=rejected)
        if token.error:
            raise UpstreamFailure("upstream_error", token.error, blame_server=False)
        return token.value

    async def _resource_server(self, snapshot: ConfigSnapshot, allowed: mcp_access.Access, uri: str,
                               request_id: str) -> str:
        """The allowed server that lists this URI (its resources, then its templates' prefixes)."""
        servers = [snapshot.mcp_servers[sid] for sid in sorted(allowed)]
        listed = await asyncio.gather(*(self._server_items(snapshot, s, mcp_pb2.MCP_KIND_RESOURCES, request_id)
                                        for s in servers))
        for server, items in zip(servers, listed, strict=True):
            if any(item.get("uri") == uri for item in items or []):
                return server.id
        templates = await asyncio.gather(*(self._server_items(
            snapshot, s, mcp_pb2.MCP_KIND_RESOURCE_TEMPLATES, request_id) for s in servers))
        for server, items in zip(servers, templates, strict=True):
            for item in items or []:
                prefix = str(item.get("uriTemplate", "")).split("{", 1)[0]
                if prefix and uri.startswith(prefix):
                    return server.id
        return ""

    def _refuse(self, record: CallRecord, kind: str, code: int, message: str, *,
                retry_after_s: float = 0.0) -> mcp_pb2.McpCallResult:
        self._recorder.refused(record, kind, message)
        return errors.error(kind, code, message, retry_after_s)

"""In-memory stand-ins for what McpGatewayServicer reaches: the MCP executor's stub, the rate
limiter and the health breakers, and a publisher that keeps what it was given."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import grpc
import orjson

from omniroute.config.snapshot import ApiKey, ConfigSnapshot, Connection, McpServer, Provider, Team
from omniroute.config.watcher import SnapshotHolder
from omniroute.settings import Settings
from omniroute.shared_state.breaker import CLOSED, OPEN, BreakerState
from omniroute.shared_state.mcp_health import McpBreakers
from omniroute.shared_state.ratelimit import Admission, Limits, RateLimiter
from omniroute.v1 import events_pb2, mcp_pb2
from omniroute_router.mcp.record import McpRecorder
from omniroute_router.mcp.servicer import McpGatewayServicer
from omniroute_router.mcp.upstream import McpUpstreamClient
from omniroute_router.selection.oauth_tokens import OAuthTokens

TOOLS: dict[str, list[dict[str, Any]]] = {
    "docs": [{"name": "search", "inputSchema": {"type": "object"}},
             {"name": "delete", "inputSchema": {"type": "object"}}],
    "files": [{"name": "read", "inputSchema": {"type": "object"}}],
}
RESOURCES: dict[str, list[dict[str, Any]]] = {"docs": [{"uri": "docs://readme", "name": "readme"}],
                                              "files": [{"uri": "file:///a", "name": "a"}]}
PROMPTS: dict[str, list[dict[str, Any]]] = {"docs": [{"name": "summarise"}], "files": []}


def server(server_id: str, **changes: Any) -> McpServer:
    values: dict[str, Any] = dict(id=server_id, name=server_id, transport="http", url=f"http://{server_id}.test/mcp",
                                  command=(), headers={"X-Api-Key": f"secret-{server_id}"}, env={},
                                  oauth_connection_id="", timeout_s=5.0, price_per_call_usd="0.01", enabled=True)
    values.update(changes)
    return McpServer(**values)


def snapshot(team_access: dict[str, tuple[str, ...]] | None, key_access: dict[str, tuple[str, ...]] | None = None,
             *, key_limits: dict[str, Any] | None = None, team_limits: dict[str, Any] | None = None,
             servers: dict[str, McpServer] | None = None) -> ConfigSnapshot:
    key = ApiKey(id="k1", name="k", enabled=True, allowed_models=None, limits=key_limits or {}, budget=None,
                 expires_at=None, team_id="t1", person_id="p1", mcp_access=key_access)
    team = Team(id="t1", name="T", allowed_models=None, limits=team_limits or {}, budget=None,
                mcp_access=team_access)
    connection = Connection(id="conn-1", provider_id="idp", name="c", api_key="", priority=0, enabled=True,
                            settings={"oauth": {}})
    provider = Provider(id="idp", type="openai", family="openai", base_url="", models=(), enabled=True, settings={},
                        connections=(connection,))
    return ConfigSnapshot(keys_by_id={"k1": key}, teams={"t1": team}, providers={"idp": provider},
                          mcp_servers=servers if servers is not None else {"docs": server("docs"),
                                                                           "files": server("files")})


class RpcError(grpc.aio.AioRpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


@dataclass
class FakeStub:
    """McpUpstream as the executor answers: lists from the tables above, calls echo."""
    lists: list[tuple[str, int]] = field(default_factory=list)
    calls: list[mcp_pb2.McpUpstreamCall] = field(default_factory=list)
    answer: Any = None          # a McpCallResult, or an exception to raise
    list_error: Exception | None = None
    expired_bearer: str = ""    # an OAuth token the server answers 401 to

    def _expired(self, request: mcp_pb2.McpListRequest | mcp_pb2.McpUpstreamCall) -> bool:
        return bool(self.expired_bearer) and (
            request.server.headers.get("Authorization") == f"Bearer {self.expired_bearer}")

    async def List(self, request: mcp_pb2.McpListRequest, timeout: float) -> mcp_pb2.McpListResult:
        self.lists.append((request.server.server_id, request.kind))
        if self.list_error is not None:
            raise self.list_error
        if self._expired(request):
            raise RpcError(grpc.StatusCode.UNAUTHENTICATED, "HTTP 401")
        tables: dict[int, dict[str, list[dict[str, Any]]]] = {
            mcp_pb2.MCP_KIND_TOOLS: TOOLS, mcp_pb2.MCP_KIND_RESOURCES: RESOURCES, mcp_pb2.MCP_KIND_PROMPTS: PROMPTS}
        table = tables.get(request.kind, {})
        return mcp_pb2.McpListResult(items_json=orjson.dumps(table.get(request.server.server_id, [])))

    async def Call(self, request: mcp_pb2.McpUpstreamCall, timeout: float) -> mcp_pb2.McpCallResult:
        self.calls.append(request)
        if self._expired(request):
            return mcp_pb2.McpCallResult(error=mcp_pb2.McpError(code=-32050, message="HTTP 401", kind="unauthorized"))
        if isinstance(self.answer, Exception):
            raise self.answer
        if self.answer is not None:
            return cast(mcp_pb2.McpCallResult, self.answer)
        body = {"content": [{"type": "text", "text": f"{request.name} ok"}], "isError": False}
        return mcp_pb2.McpCallResult(result_json=orjson.dumps(body))


class FakeLimiter:
    """Counts per scope; admits while every scope is under its rpm (all or none, as the script)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    async def admit_all(self, scopes: list[tuple[str, Limits]], member: str) -> list[Admission]:
        results = [Admission(self.counts.get(s, 0) < lim.rpm, 0.0 if self.counts.get(s, 0) < lim.rpm else 42.0,
                             lim, self.counts.get(s, 0), 0, 0) for s, lim in scopes]
        if all(a.allowed for a in results):
            for s, _ in scopes:
                self.counts[s] = self.counts.get(s, 0) + 1
        return results


class FakeBreakers:
    def __init__(self) -> None:
        self.open: set[str] = set()
        self.records: list[tuple[str, bool]] = []

    async def view(self, ids: list[str]) -> dict[str, BreakerState]:
        return {i: BreakerState(OPEN if i in self.open else CLOSED, 30.0 if i in self.open else 0.0, 0) for i in ids}

    async def try_pass(self, server_id: str, probe_timeout_s: float) -> BreakerState:
        return (await self.view([server_id]))[server_id]

    async def record(self, server_id: str, success: bool, profile: Any) -> str:
        self.records.append((server_id, success))
        return CLOSED


class FakeOAuth:
    """OAuthTokens: "tok-1" until a caller says it was rejected, then "tok-2" (one refresh)."""

    def __init__(self) -> None:
        self.current = "tok-1"
        self.refreshes: list[str] = []

    async def access_token(self, connection: Connection, *, rejected: str = "") -> SimpleNamespace:
        if rejected and rejected == self.current:
            self.refreshes.append(connection.id)
            self.current = f"tok-{int(self.current.split('-')[1]) + 1}"
        return SimpleNamespace(value=self.current, error="")


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, subject: str, payload: bytes, *, msg_id: str, headers: dict[str, str] | None = None) -> None:
        self.sent.append((subject, payload))

    def calls(self) -> list[events_pb2.McpCallEvent]:
        return [events_pb2.McpCallEvent.FromString(p) for s, p in self.sent if s.endswith(".mcp.call")]

    def refusals(self) -> list[events_pb2.AuditEvent]:
        return [events_pb2.AuditEvent.FromString(p) for s, p in self.sent if s.endswith(".audit.refused")]


@dataclass
class Gateway:
    servicer: McpGatewayServicer
    stub: FakeStub
    limiter: FakeLimiter
    breakers: FakeBreakers
    publisher: FakePublisher
    holder: Any
    oauth: FakeOAuth

    async def catalog(self, kind: int = mcp_pb2.MCP_KIND_TOOLS) -> tuple[list[dict[str, Any]], list[str]]:
        request = mcp_pb2.McpCatalogRequest(request_id="r", key_id="k1", kind=mcp_pb2.McpKind.Name(kind))
        result = await self.servicer.ListCatalog(request, cast(Any, None))
        return orjson.loads(result.items_json), list(result.unavailable_servers)

    async def call(self, name: str, method: str = "tools/call", args: bytes = b'{"q": "x"}',
                   request_id: str = "req-1", key_id: str = "k1") -> mcp_pb2.McpCallResult:
        request = mcp_pb2.McpCallRequest(request_id=request_id, key_id=key_id, method=method, name=name,
                                         arguments_json=args, client_session_id="sess-1")
        return await self.servicer.Call(request, cast(Any, None))


def gateway(current: ConfigSnapshot) -> Gateway:
    stub, limiter, breakers, publisher, oauth = FakeStub(), FakeLimiter(), FakeBreakers(), FakePublisher(), FakeOAuth()
    holder = SimpleNamespace(current=current)
    upstream = SimpleNamespace(stub=stub)
    settings = Settings(env="unit")
    servicer = McpGatewayServicer(cast(SnapshotHolder, holder), cast(McpUpstreamClient, upstream),
                                  cast(RateLimiter, limiter), cast(McpBreakers, breakers),
                                  McpRecorder(settings, cast(Any, publisher)), cast(OAuthTokens, oauth))
    return Gateway(servicer, stub, limiter, breakers, publisher, holder, oauth)

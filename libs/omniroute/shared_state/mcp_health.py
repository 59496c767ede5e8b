"""Where an upstream MCP server's health lives in Redis, and how it reads. The one owner of that
key layout: the routers record every forwarded call's outcome through `McpBreakers` (the
connection breaker of `omniroute.shared_state.breaker`, keyed per MCP server instead: N failures
in a row open it, a single probe is let through after the cool-down), the admin reads it with
`health` for /api/mcp/servers and clears it with `forget` when a server's configuration
changes (state earned with a wrong URL or credential says nothing about the corrected one).

Keys: `<env>:mcphealth:<server id>` (a hash: state, failures, opened_until, probe_until), apart
from the connections' breakers (`health_keys`) so that ids of the two kinds never meet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import redis.asyncio as redis

from omniroute.config.routing_spec import ResilienceProfile
from omniroute.shared_state.breaker import CLOSED, DEGRADED, OPEN, Breakers, BreakerState

# How many failed calls in a row mark a server unhealthy, and for how long before one probe call
# may try it again. Failures are the gateway's to count: upstream_error and timeout outcomes
# (a tool's own isError result, a refusal or a caller's bad arguments are not the server failing).
MCP_BREAKER_PROFILE = ResilienceProfile(failure_threshold=3, degraded_threshold=1, reset_timeout_s=30.0)

HealthStatus = Literal["healthy", "degraded", "unhealthy", "probing"]


class McpHealthKeys:
    def __init__(self, env: str) -> None:
        self.prefix = f"{env}:mcphealth:"

    def server(self, server_id: str) -> str:
        return self.prefix + server_id


class McpBreakers(Breakers):
    """`Breakers` (try_pass / record / view, the same Lua scripts) keyed per MCP server."""

    def __init__(self, client: redis.Redis, env: str) -> None:
        super().__init__(client, env)
        self._mcp_keys = McpHealthKeys(env)

    def key(self, connection_id: str) -> str:
        return self._mcp_keys.server(connection_id)

    async def reset(self, connection_id: str | None = None) -> int:
        if connection_id is not None:
            return int(await self._redis.delete(self.key(connection_id)))
        keys = [k async for k in self._redis.scan_iter(match=self._mcp_keys.prefix + "*", count=500)]
        return int(await self._redis.delete(*keys)) if keys else 0


@dataclass(frozen=True, slots=True)
class McpServerHealth:
    """What the admin shows for one server: its status, the failures in a row, and (unhealthy)
    how long until a probe call may try it."""
    status: HealthStatus
    failures: int
    retry_after_s: float
    breaker_state: str

    def as_json(self) -> dict[str, object]:
        return {"status": self.status, "consecutiveFailures": self.failures,
                "retryAfterS": round(self.retry_after_s, 3), "breaker": self.breaker_state}


def _status(state: BreakerState) -> HealthStatus:
    if state.state == CLOSED:
        return "healthy"
    if state.state == DEGRADED:
        return "degraded"
    return "unhealthy" if state.state == OPEN else "probing"


async def health(client: redis.Redis, env: str, server_ids: list[str]) -> dict[str, McpServerHealth]:
    """Every listed server's health in one round trip (a server never called is healthy)."""
    states = await McpBreakers(client, env).view(server_ids)
    return {sid: McpServerHealth(_status(s), s.failures, s.retry_after_s, s.state) for sid, s in states.items()}


async def forget(client: redis.Redis, env: str, server_ids: list[str]) -> int:
    """Clear these servers' health (their configuration changed); how many were marked."""
    if not server_ids:
        return 0
    keys = McpHealthKeys(env)
    return int(await client.delete(*[keys.server(s) for s in server_ids]))

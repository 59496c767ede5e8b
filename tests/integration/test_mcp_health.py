"""An MCP server's health in Redis (omniroute.shared_state.mcp_health): the router's breaker
per server, the admin's read of it, and the admin's clearing; apart from connections' breakers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as redis

from omniroute import shared_state
from omniroute.settings import Settings
from omniroute.shared_state import mcp_health
from omniroute.shared_state.breaker import Breakers
from omniroute.shared_state.mcp_health import MCP_BREAKER_PROFILE, McpBreakers


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[redis.Redis]:
    connection = shared_state.connect(settings)
    yield connection
    keys = [k async for k in connection.scan_iter(match=settings.env + ":*")]
    if keys:
        await connection.delete(*keys)
    await connection.aclose()


async def test_failures_in_a_row_mark_a_server_unhealthy_and_the_admin_reads_it(
        client: redis.Redis, settings: Settings) -> None:
    breakers = McpBreakers(client, settings.env)
    assert (await mcp_health.health(client, settings.env, ["tools"]))["tools"].status == "healthy"
    await breakers.record("tools", False, MCP_BREAKER_PROFILE)
    seen = (await mcp_health.health(client, settings.env, ["tools"]))["tools"]
    assert (seen.status, seen.failures) == ("degraded", 1)
    for _ in range(MCP_BREAKER_PROFILE.failure_threshold - 1):
        await breakers.record("tools", False, MCP_BREAKER_PROFILE)
    seen = (await mcp_health.health(client, settings.env, ["tools", "other"]))["tools"]
    assert seen.status == "unhealthy" and seen.failures == MCP_BREAKER_PROFILE.failure_threshold
    assert 0 < seen.retry_after_s <= MCP_BREAKER_PROFILE.reset_timeout_s
    assert seen.as_json()["status"] == "unhealthy"
    assert not (await breakers.try_pass("tools", 5.0)).usable
    # A connection that happens to share the id keeps its own breaker.
    assert (await Breakers(client, settings.env).view(["tools"]))["tools"].state == "CLOSED"
    assert await client.exists(f"{settings.env}:mcphealth:tools") == 1
    assert await mcp_health.forget(client, settings.env, ["tools", "other"]) == 1
    assert (await mcp_health.health(client, settings.env, ["tools"]))["tools"].status == "healthy"


async def test_a_success_heals_a_degraded_server(client: redis.Redis, settings: Settings) -> None:
    breakers = McpBreakers(client, settings.env)
    await breakers.record("s", False, MCP_BREAKER_PROFILE)
    await breakers.record("s", True, MCP_BREAKER_PROFILE)
    assert (await mcp_health.health(client, settings.env, ["s"]))["s"].as_json() == {
        "status": "healthy", "consecutiveFailures": 0, "retryAfterS": 0, "breaker": "CLOSED"}
    assert await breakers.reset() == 0


def test_the_layout_is_written_in_one_module() -> None:
    """Writers (the routers) and readers (the admin) build the keys through mcp_health only."""
    root = Path(__file__).resolve().parents[2]
    found = [path.relative_to(root).as_posix()
             for path in sorted([*(root / "libs").rglob("*.py"), *(root / "services").rglob("*.py")])
             if ":mcphealth:" in path.read_text()]
    assert found == ["libs/omniroute/shared_state/mcp_health.py"]

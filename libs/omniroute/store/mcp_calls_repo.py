"""The mcp_calls table (issue 21): one row per MCP request through the gateway (tools/call,
resources/read, prompts/get), written by accounting from the router's `McpCallEvent`s. Reads for
the management API are in mcp_call_queries."""

from __future__ import annotations

from dataclasses import astuple, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection

from omniroute.store import pg_text

_COLUMNS = ("request_id, key_id, team_id, person_id, server_id, method, name, args_bytes, args_sha256, "
            "result_bytes, latency_ms, outcome, error_message, cost_usd, started_at")


@dataclass(frozen=True, slots=True)
class McpCallRow:
    request_id: str
    key_id: str
    team_id: str
    person_id: str
    server_id: str
    method: str
    name: str
    args_bytes: int
    args_sha256: str
    result_bytes: int
    latency_ms: float
    outcome: str        # ok, tool_error, refused, upstream_error, timeout
    error_message: str
    cost_usd: Decimal
    started_at: datetime


async def insert_new(conn: AsyncConnection[Any], rows: list[McpCallRow]) -> set[str]:
    """Insert the rows not kept yet (a redelivered event's request id is); returns the request
    ids inserted now, so that the caller writes what goes with a call (its audit row) once."""
    if not rows:
        return set()
    placeholders = ", ".join(["(" + ", ".join(["%s"] * 15) + ")"] * len(rows))
    cursor = await conn.execute(
        f"INSERT INTO mcp_calls ({_COLUMNS}) VALUES {placeholders} "
        "ON CONFLICT (request_id) DO NOTHING RETURNING request_id",
        [value for row in rows for value in pg_text.row(astuple(row))])
    return {str(found[0]) for found in await cursor.fetchall()}

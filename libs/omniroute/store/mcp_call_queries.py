"""Reads of the mcp_calls table (accounting writes it: mcp_calls_repo): the management API's
/api/mcp/calls, filtered by key, team, server, outcome and time, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row


@dataclass(frozen=True, slots=True)
class CallFilter:
    key_id: str | None = None
    team_id: str | None = None
    server_id: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    team_ids: list[str] | None = None   # a team admin's scope (None: every team)
    limit: int = 100


def _where(found: CallFilter) -> tuple[sql.Composable, list[Any]]:
    clauses: list[sql.Composable] = []
    params: list[Any] = []
    for column, value in (("key_id", found.key_id), ("team_id", found.team_id),
                          ("server_id", found.server_id), ("outcome", found.outcome)):
        if value is not None:
            clauses.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    if found.since is not None:
        clauses.append(sql.SQL("started_at >= %s"))
        params.append(found.since)
    if found.until is not None:
        clauses.append(sql.SQL("started_at < %s"))
        params.append(found.until)
    if found.team_ids is not None:
        clauses.append(sql.SQL("team_id = ANY(%s)"))
        params.append(found.team_ids)
    if not clauses:
        return sql.SQL(""), params
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses), params


def _json(row: dict[str, Any]) -> dict[str, Any]:
    return {"requestId": row["request_id"], "keyId": row["key_id"], "teamId": row["team_id"],
            "personId": row["person_id"], "serverId": row["server_id"], "method": row["method"],
            "name": row["name"], "argsBytes": row["args_bytes"], "argsSha256": row["args_sha256"],
            "resultBytes": row["result_bytes"], "latencyMs": row["latency_ms"], "outcome": row["outcome"],
            "error": row["error_message"], "costUsd": float(row["cost_usd"]),
            "startedAt": row["started_at"].isoformat()}


async def list_calls(conn: AsyncConnection[Any], found: CallFilter) -> dict[str, Any]:
    """{"calls": newest first, at most `limit`; "totals": over every matching call: count, cost,
    per outcome}."""
    where, params = _where(found)
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(sql.SQL("SELECT * FROM mcp_calls{} ORDER BY started_at DESC, request_id LIMIT %s")
                         .format(where), [*params, found.limit])
    calls = [_json(row) for row in await cursor.fetchall()]
    await cursor.execute(sql.SQL("SELECT outcome, count(*) AS calls, coalesce(sum(cost_usd), 0) AS cost "
                                 "FROM mcp_calls{} GROUP BY outcome").format(where), params)
    by_outcome = {row["outcome"]: int(row["calls"]) for row in await cursor.fetchall()}
    await cursor.execute(sql.SQL("SELECT count(*) AS calls, coalesce(sum(cost_usd), 0) AS cost FROM mcp_calls{}")
                         .format(where), params)
    total = await cursor.fetchone()
    return {"calls": calls,
            "totals": {"calls": int(total["calls"]) if total else 0,
                       "costUsd": float(total["cost"]) if total else 0.0, "byOutcome": by_outcome}}

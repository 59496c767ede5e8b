"""Read side of usage: time-bucketed history, per-request logs, per-connection totals. Every
query is bounded by a started_at range (the BRIN / (x, started_at) indexes) and a row limit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

BUCKETS = ("minute", "hour", "day", "week", "month")
GROUPS = {"key": "key_id", "provider": "provider", "model": "model", "connection": "connection",
          "status": "status"}


@dataclass(frozen=True, slots=True)
class UsageFilter:
    since: datetime
    until: datetime
    key_id: str | None = None
    provider: str | None = None
    model: str | None = None
    connection: str | None = None

    def where(self) -> tuple[sql.Composable, list[Any]]:
        parts: list[sql.Composable] = [sql.SQL("started_at >= %s AND started_at < %s")]
        params: list[Any] = [self.since, self.until]
        for column, value in (("key_id", self.key_id), ("provider", self.provider),
                              ("model", self.model), ("connection", self.connection)):
            if value:
                parts.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
                params.append(value)
        return sql.SQL(" AND ").join(parts), params


_TOTALS = sql.SQL(
    "count(*) AS requests, count(*) FILTER (WHERE status >= 400) AS errors, "
    "coalesce(sum(input_tokens), 0) AS input_tokens, coalesce(sum(output_tokens), 0) AS output_tokens, "
    "coalesce(sum(cached_tokens), 0) AS cached_tokens, "
    "coalesce(sum(reasoning_tokens), 0) AS reasoning_tokens, coalesce(sum(cost_usd), 0) AS cost_usd, "
    "count(*) FILTER (WHERE cache_hit) AS cache_hits, coalesce(avg(latency_ms), 0) AS avg_latency_ms")


def _totals_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"requests": int(row["requests"]), "errors": int(row["errors"]),
            "inputTokens": int(row["input_tokens"]), "outputTokens": int(row["output_tokens"]),
            "cachedTokens": int(row["cached_tokens"]), "reasoningTokens": int(row["reasoning_tokens"]),
            "costUsd": float(row["cost_usd"]), "cacheHits": int(row["cache_hits"]),
            "avgLatencyMs": round(float(row["avg_latency_ms"]), 1)}


async def history(conn: AsyncConnection[Any], where: UsageFilter, bucket: str,
                  group_by: str | None) -> list[dict[str, Any]]:
    """One entry per (bucket start, group value) that has rows, in time order."""
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}")
    condition, params = where.where()
    group = sql.Identifier(GROUPS[group_by]) if group_by else sql.SQL("''")
    query = sql.SQL(
        "SELECT date_trunc(%s, started_at, 'UTC') AS bucket, {group}::text AS grp, {totals} "
        "FROM usage WHERE {condition} GROUP BY 1, 2 ORDER BY 1, 2").format(
            group=group, totals=_TOTALS, condition=condition)
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(query, [bucket, *params])
        rows = await cursor.fetchall()
    result = []
    for row in rows:
        entry: dict[str, Any] = {"start": row["bucket"].isoformat()}
        if group_by:
            entry[group_by] = row["grp"]
        entry.update(_totals_json(row))
        result.append(entry)
    return result


async def totals(conn: AsyncConnection[Any], where: UsageFilter,
                 group_by: str | None = None) -> dict[str, Any] | list[dict[str, Any]]:
    condition, params = where.where()
    if group_by is None:
        query = sql.SQL("SELECT {totals} FROM usage WHERE {condition}").format(
            totals=_TOTALS, condition=condition)
    else:
        query = sql.SQL("SELECT {group}::text AS grp, {totals} FROM usage WHERE {condition} "
                        "GROUP BY 1 ORDER BY sum(cost_usd) DESC, 1").format(
            group=sql.Identifier(GROUPS[group_by]), totals=_TOTALS, condition=condition)
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(query, params)
        rows = await cursor.fetchall()
    if group_by is None:
        return _totals_json(rows[0])
    return [{group_by: row["grp"], **_totals_json(row)} for row in rows]


async def request_logs(conn: AsyncConnection[Any], where: UsageFilter, *, limit: int,
                       before: tuple[datetime, str] | None = None,
                       request_id: str | None = None, payloads: bool = False) -> list[dict[str, Any]]:
    """Newest first; `before` (started_at, request_id) of the last row seen pages backwards.
    With `payloads`, each row also carries its logged request / response (detailed logging;
    None where none was captured)."""
    condition, params = where.where()
    if request_id:
        condition, params = sql.SQL("request_id = %s"), [request_id]
    elif before is not None:
        condition = sql.SQL("{} AND (started_at, request_id) < (%s, %s)").format(condition)
        params = [*params, *before]
    source = sql.SQL("usage")
    if payloads:
        source = sql.SQL("usage LEFT JOIN request_payloads USING (request_id)")
    query = sql.SQL("SELECT * FROM {source} WHERE {condition} ORDER BY started_at DESC, request_id DESC "
                    "LIMIT %s").format(source=source, condition=condition)
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(query, [*params, limit])
        rows = await cursor.fetchall()
    if not payloads:
        return [_log_json(row) for row in rows]
    return [{**_log_json(row), "requestPayload": row["request_payload"],
             "responsePayload": row["response_payload"]} for row in rows]


def _log_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"requestId": row["request_id"], "startedAt": row["started_at"].isoformat(),
            "keyId": row["key_id"], "provider": row["provider"], "connection": row["connection"],
            "model": row["model"], "requestedModel": row["requested_model"], "combo": row["combo"],
            "status": row["status"], "errorClass": row["error_class"],
            "inputTokens": row["input_tokens"], "outputTokens": row["output_tokens"],
            "cachedTokens": row["cached_tokens"], "reasoningTokens": row["reasoning_tokens"],
            "costUsd": float(row["cost_usd"]), "latencyMs": row["latency_ms"], "ttftMs": row["ttft_ms"],
            "stream": row["stream"], "clientFormat": row["client_format"], "cacheHit": row["cache_hit"],
            "failedAttempts": row["failed_attempts"],
            # Transcriptions only (0007_audio_usage.sql); None for every other request.
            "audioSeconds": row.get("audio_seconds")}


async def resolve_connection(conn: AsyncConnection[Any], connection_id: str) -> tuple[str | None, str]:
    """(provider id, connection name) as usage rows record them. A connection id from the
    connections table, "provider/name", or a bare connection name are all accepted."""
    row = await (await conn.execute("SELECT provider_id, name FROM connections WHERE id = %s",
                                    (connection_id,))).fetchone()
    if row is not None:
        return row[0], row[1]
    provider, slash, name = connection_id.partition("/")
    return (provider, name) if slash else (None, connection_id)

"""The dashboard's reads of the usage table (Postgres; never on the gateway's hot path)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row


@dataclass(frozen=True)
class Period:
    name: str
    span: timedelta
    bucket: timedelta
    label_format: str


PERIODS = {
    "1h": Period("1h", timedelta(hours=1), timedelta(minutes=5), "%H:%M"),
    "24h": Period("24h", timedelta(hours=24), timedelta(hours=1), "%H:00"),
    "7d": Period("7d", timedelta(days=7), timedelta(hours=6), "%a %Hh"),
    "30d": Period("30d", timedelta(days=30), timedelta(days=1), "%d %b"),
}
GROUPS = {"key": "u.key_id", "provider": "u.provider", "model": "u.model", "connection": "u.connection"}


def period(name: str | None) -> Period:
    return PERIODS.get(name or "", PERIODS["24h"])


async def _cost_column(conn: AsyncConnection[Any]) -> sql.Composable:
    """cost_usd comes with the accounting migration; without it costs show as 0."""
    row = await (await conn.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_name = 'usage' AND column_name = 'cost_usd'"
    )).fetchone()
    return sql.SQL("u.cost_usd") if row else sql.SQL("0::numeric")


async def overview(conn: AsyncConnection[Any], chosen: Period) -> dict[str, Any]:
    cost = await _cost_column(conn)
    since = datetime.now(UTC) - chosen.span
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(sql.SQL(
        """SELECT count(*) AS requests, coalesce(sum(input_tokens), 0) AS input_tokens,
                  coalesce(sum(output_tokens), 0) AS output_tokens, coalesce(sum({cost}), 0) AS cost,
                  count(*) FILTER (WHERE status >= 400) AS errors,
                  percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95
           FROM usage u WHERE started_at >= %s""").format(cost=cost), (since,))
    totals = await cursor.fetchone() or {}
    bucket_s = int(chosen.bucket.total_seconds())
    await cursor.execute(
        """SELECT floor(extract(epoch FROM started_at) / %s)::bigint AS slot, count(*) AS requests,
                  count(*) FILTER (WHERE status >= 400) AS errors,
                  coalesce(sum(input_tokens + output_tokens), 0) AS tokens,
                  percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95
           FROM usage WHERE started_at >= %s GROUP BY slot""", (bucket_s, since))
    by_slot = {row["slot"]: row for row in await cursor.fetchall()}
    first = int(since.timestamp()) // bucket_s + 1
    slots = list(range(first, first + int(chosen.span / chosen.bucket)))
    series = {
        "labels": [datetime.fromtimestamp(s * bucket_s, UTC).strftime(chosen.label_format) for s in slots],
        "requests": [float(by_slot[s]["requests"]) if s in by_slot else 0.0 for s in slots],
        "errors": [float(by_slot[s]["errors"]) if s in by_slot else 0.0 for s in slots],
        "tokens": [float(by_slot[s]["tokens"]) if s in by_slot else 0.0 for s in slots],
        "p95": [float(by_slot[s]["p95"]) if s in by_slot and by_slot[s]["p95"] is not None else None
                for s in slots],
    }
    return {"totals": totals, "series": series}


async def breakdown(conn: AsyncConnection[Any], chosen: Period, group: str) -> list[dict[str, Any]]:
    column = GROUPS.get(group, GROUPS["model"])
    cost = await _cost_column(conn)
    label = sql.SQL("coalesce(k.name, u.key_id)") if group == "key" else sql.SQL(column)
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(sql.SQL(
        """SELECT {label} AS name, count(*) AS requests, coalesce(sum(u.input_tokens), 0) AS input_tokens,
                  coalesce(sum(u.output_tokens), 0) AS output_tokens, coalesce(sum({cost}), 0) AS cost,
                  count(*) FILTER (WHERE u.status >= 400) AS errors,
                  percentile_cont(0.95) WITHIN GROUP (ORDER BY u.latency_ms) AS p95
           FROM usage u LEFT JOIN api_keys k ON k.id = u.key_id
           WHERE u.started_at >= %s GROUP BY {label} ORDER BY requests DESC, name LIMIT 200""").format(
        label=label, cost=cost), (datetime.now(UTC) - chosen.span,))
    return list(await cursor.fetchall())


async def request_logs(conn: AsyncConnection[Any], *, limit: int, offset: int, errors_only: bool,
                       model: str, key: str) -> list[dict[str, Any]]:
    cost = await _cost_column(conn)
    clauses = [sql.SQL("TRUE")]
    params: list[Any] = []
    if errors_only:
        clauses.append(sql.SQL("u.status >= 400"))
    if model:
        clauses.append(sql.SQL("(u.model = %s OR u.requested_model = %s)"))
        params += [model, model]
    if key:
        clauses.append(sql.SQL("(u.key_id = %s OR k.name = %s)"))
        params += [key, key]
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(sql.SQL(
        """SELECT u.request_id, u.started_at, coalesce(k.name, u.key_id) AS key, u.provider, u.connection,
                  u.model, u.requested_model, u.status, u.error_class, u.latency_ms, u.ttft_ms,
                  u.input_tokens, u.output_tokens, {cost} AS cost, u.stream, u.client_format, u.cache_hit
           FROM usage u LEFT JOIN api_keys k ON k.id = u.key_id WHERE {where}
           ORDER BY u.started_at DESC LIMIT %s OFFSET %s""").format(
        cost=cost, where=sql.SQL(" AND ").join(clauses)), [*params, limit, offset])
    return list(await cursor.fetchall())


def _cell(value: Any) -> Any:
    # A spreadsheet would run a cell starting with = + - @ as a formula: make it text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()

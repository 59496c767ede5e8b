"""Usage rows: one per request, written in batches, idempotent on request_id."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection

from omniroute.store import pg_text
from omniroute.v1 import common_pb2, events_pb2

# (column, Postgres array type): the batch travels as one array per column and is expanded by
# unnest() — one statement and one round trip per batch, several times faster than executemany.
_COLUMNS: tuple[tuple[str, str], ...] = (
    ("request_id", "text"), ("key_id", "text"), ("provider", "text"), ("connection", "text"),
    ("model", "text"), ("requested_model", "text"), ("combo", "text"),
    ("input_tokens", "bigint"), ("output_tokens", "bigint"), ("cached_tokens", "bigint"),
    ("reasoning_tokens", "bigint"), ("status", "integer"), ("error_class", "text"),
    ("latency_ms", "double precision"), ("ttft_ms", "double precision"), ("stream", "boolean"),
    ("client_format", "text"), ("cache_hit", "boolean"), ("failed_attempts", "jsonb"),
    ("started_at", "timestamptz"), ("cost_usd", "numeric"), ("audio_seconds", "double precision"),
    ("error_message", "text"), ("team_id", "text"), ("person_id", "text"))
_NAMES = ", ".join(name for name, _ in _COLUMNS)
# jsonb arrays do not adapt from Python lists of strings; they travel as text and are cast.
_ARRAYS = ", ".join(f"%s::{'text' if kind == 'jsonb' else kind}[]" for _, kind in _COLUMNS)
_SELECT = ", ".join(f"{name}::jsonb" if kind == "jsonb" else name for name, kind in _COLUMNS)
_INSERT = (f"INSERT INTO usage ({_NAMES}) SELECT {_SELECT} FROM unnest({_ARRAYS}) AS t({_NAMES}) "
           "ON CONFLICT (request_id) DO NOTHING RETURNING request_id")
# Detailed logging (0008_request_payloads.sql): only events that carry payloads get a row.
_INSERT_PAYLOADS = (
    "INSERT INTO request_payloads (request_id, request_payload, response_payload) "
    "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) ON CONFLICT (request_id) DO NOTHING")


def started_at(event: events_pb2.UsageEvent) -> datetime:
    return (event.started_at.ToDatetime(tzinfo=UTC) if event.HasField("started_at")
            else datetime.now(UTC))


def row_of(event: events_pb2.UsageEvent, cost: Decimal = Decimal(0)) -> tuple[Any, ...]:
    return pg_text.row((event.request_id, event.key_id, event.provider, event.connection, event.model,
            event.requested_model, event.combo, event.usage.input_tokens, event.usage.output_tokens,
            event.usage.cached_tokens, event.usage.reasoning_tokens, event.status, event.error_class,
            event.latency_ms, event.ttft_ms, event.stream,
            common_pb2.ApiFormat.Name(event.client_format).lower(), event.cache_hit,
            json.dumps(pg_text.json_value(list(event.failed_attempts))), started_at(event), cost,
            # NULL unless the request was a transcription (0007_audio_usage.sql).
            event.usage.audio_seconds or None,
            # Why it failed, as the caller was told (0009_usage_error_message.sql).
            event.error_message,
            # The key's team and person when the request ran (0011_governance.sql).
            event.team_id, event.person_id))


async def insert_usage_rows(conn: AsyncConnection[Any], events: Sequence[events_pb2.UsageEvent],
                            costs: Mapping[str, Decimal] | None = None) -> set[str]:
    """Insert in one transaction; returns the request ids inserted now. Rows already there
    (redelivered events) are skipped, so callers count only what this call added."""
    unique = {event.request_id: event for event in events}  # a batch may hold a redelivery twice
    if not unique:
        return set()
    rows = [row_of(event, (costs or {}).get(rid, Decimal(0))) for rid, event in unique.items()]
    columns = [list(values) for values in zip(*rows, strict=True)]
    logged = [event for event in unique.values() if event.request_payload or event.response_payload]
    async with conn.transaction(), conn.cursor() as cursor:
        await cursor.execute(_INSERT, columns)
        inserted = {row[0] for row in await cursor.fetchall()}
        if logged:
            await cursor.execute(_INSERT_PAYLOADS, (
                [event.request_id for event in logged], [_text(event.request_payload) for event in logged],
                [_text(event.response_payload) for event in logged]))
        return inserted


def _text(payload: bytes) -> str:
    """Payloads are UTF-8 from the router; Postgres text refuses NUL."""
    return pg_text.text(payload.decode("utf-8", "replace"))


async def insert_usage(conn: AsyncConnection[Any], events: Sequence[events_pb2.UsageEvent],
                       costs: Mapping[str, Decimal] | None = None) -> int:
    """How many rows were new (see insert_usage_rows)."""
    return len(await insert_usage_rows(conn, events, costs))


async def delete_older_than(conn: AsyncConnection[Any], cutoff: datetime, *,
                            batch: int = 10_000) -> int:
    """Retention: delete rows that started before `cutoff`, in bounded batches so that a large
    backlog never holds one long transaction (locks, WAL bursts, replica lag)."""
    total = 0
    while True:
        async with conn.transaction():
            cursor = await conn.execute(
                "DELETE FROM usage WHERE ctid = ANY(ARRAY(SELECT ctid FROM usage "
                "WHERE started_at < %s LIMIT %s))", (cutoff, batch))
            deleted = cursor.rowcount
        total += max(deleted, 0)
        if deleted < batch:
            return total

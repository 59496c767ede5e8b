"""Usage rows: one per request, written in batches, idempotent on request_id."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from omniroute.v1 import common_pb2, events_pb2

_COLUMNS = ("request_id", "key_id", "provider", "connection", "model", "requested_model", "combo",
            "input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens", "status",
            "error_class", "latency_ms", "ttft_ms", "stream", "client_format", "cache_hit",
            "failed_attempts", "started_at")
_INSERT = (f"INSERT INTO usage ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))}) "
           "ON CONFLICT (request_id) DO NOTHING")


def row_of(event: events_pb2.UsageEvent) -> tuple[Any, ...]:
    started = (event.started_at.ToDatetime(tzinfo=UTC) if event.HasField("started_at")
               else datetime.now(UTC))
    return (event.request_id, event.key_id, event.provider, event.connection, event.model,
            event.requested_model, event.combo, event.usage.input_tokens, event.usage.output_tokens,
            event.usage.cached_tokens, event.usage.reasoning_tokens, event.status, event.error_class,
            event.latency_ms, event.ttft_ms, event.stream,
            common_pb2.ApiFormat.Name(event.client_format).lower(), event.cache_hit,
            Jsonb(list(event.failed_attempts)), started)


async def insert_usage(conn: AsyncConnection[Any], events: list[events_pb2.UsageEvent]) -> int:
    """Insert in one transaction; rows already there (redelivered events) are skipped."""
    async with conn.transaction(), conn.cursor() as cursor:
        await cursor.executemany(_INSERT, [row_of(event) for event in events])
        return cursor.rowcount

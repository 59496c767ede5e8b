"""MCP calls through the gateway (`McpCallEvent`s the router publishes on `<env>.mcp.call`) →
one mcp_calls row each (cost: the server's price per call, charged when the server did the work:
outcome ok or tool_error) and one audit_log row (actor `key:<id>`, action `mcp.<method>`, the
key's team). Both are written in one transaction, and only for calls not kept yet: a redelivered
event writes nothing twice."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

from nats.aio.msg import Msg
from psycopg_pool import AsyncConnectionPool

from omniroute.bus.audit_events import key_actor
from omniroute.store import audit_repo, mcp_calls_repo
from omniroute.v1 import events_pb2

log = logging.getLogger("omniroute.accounting.mcp")
DURABLE = "accounting-mcp"
SUBJECTS = "mcp.>"
ACTION_PREFIX = "mcp."
CHARGED_OUTCOMES = frozenset({"ok", "tool_error"})
NAMED_METHODS = frozenset({"tools/call", "prompts/get"})   # a resource is named by its URI


def decode(messages: list[Msg]) -> list[events_pb2.McpCallEvent]:
    events: dict[str, events_pb2.McpCallEvent] = {}
    for message in messages:
        event = events_pb2.McpCallEvent()
        try:
            event.ParseFromString(message.data)
        except Exception:  # protobuf raises DecodeError; a poison message must not block the rest
            log.error("dropping an undecodable MCP call event (%d bytes)", len(message.data))
            continue
        if event.request_id and event.server_id and event.method:
            events[event.request_id] = event   # one batch may hold a redelivery too
        else:
            log.error("dropping an MCP call event without request id, server or method")
    return list(events.values())


def started(event: events_pb2.McpCallEvent) -> datetime:
    return event.started_at.ToDatetime(tzinfo=UTC) if event.HasField("started_at") else datetime.now(UTC)


def cost(event: events_pb2.McpCallEvent) -> Decimal:
    if event.outcome not in CHARGED_OUTCOMES:
        return Decimal(0)
    return Decimal(repr(event.price_per_call_usd)).quantize(Decimal("0.000000001"))


def call_row(event: events_pb2.McpCallEvent) -> mcp_calls_repo.McpCallRow:
    return mcp_calls_repo.McpCallRow(
        request_id=event.request_id, key_id=event.key_id, team_id=event.team_id, person_id=event.person_id,
        server_id=event.server_id, method=event.method, name=event.name, args_bytes=event.args_bytes,
        args_sha256=event.args_sha256, result_bytes=event.result_bytes, latency_ms=event.latency_ms,
        outcome=event.outcome, error_message=event.error_message, cost_usd=cost(event),
        started_at=started(event))


def audit_row(event: events_pb2.McpCallEvent) -> tuple[datetime, audit_repo.Entry]:
    target = f"{event.server_id}__{event.name}" if event.method in NAMED_METHODS else event.name
    entry = audit_repo.Entry(
        actor=key_actor(event.key_id), action=ACTION_PREFIX + event.method, target=target,
        before_digest=None, after_digest=None, ip="", request_id=event.request_id,
        detail={"server": event.server_id, "name": event.name, "outcome": event.outcome,
                "error": event.error_message, "args_bytes": event.args_bytes,
                "args_sha256": event.args_sha256, "result_bytes": event.result_bytes,
                "latency_ms": round(event.latency_ms, 3), "cost_usd": format(cost(event).normalize(), "f"),
                "person": event.person_id, "session": event.client_session_id},
        team_id=event.team_id)
    return started(event), entry


class McpCallRecorder:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def handle(self, messages: list[Msg]) -> None:
        events = decode(messages)
        if not events:
            return
        async with self._pool.connection() as conn, conn.transaction():
            inserted = await mcp_calls_repo.insert_new(conn, [call_row(event) for event in events])
            await audit_repo.insert_at(conn, [audit_row(event) for event in events
                                              if event.request_id in inserted])

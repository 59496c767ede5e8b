"""Gateway refusals (`AuditEvent`s the edge and the router publish on `<env>.audit.refused`) →
one audit_log row each: actor `key:<id>` (or `key:unknown`, `ip:<address>`), the key's team,
action `gateway.refused.<reason>`, the moment of the refusal. A redelivered event writes nothing
twice (audit_repo's unique index on request id and action)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from nats.aio.msg import Msg
from psycopg_pool import AsyncConnectionPool

from omniroute.bus.audit_events import ACTION_PREFIX
from omniroute.store import audit_repo
from omniroute.v1 import events_pb2

log = logging.getLogger("omniroute.accounting.refusals")
DURABLE = "accounting-audit"
SUBJECTS = "audit.>"


def decode(messages: list[Msg]) -> list[events_pb2.AuditEvent]:
    events = []
    for message in messages:
        event = events_pb2.AuditEvent()
        try:
            event.ParseFromString(message.data)
        except Exception:  # protobuf raises DecodeError; a poison message must not block the rest
            log.error("dropping an undecodable audit event (%d bytes)", len(message.data))
            continue
        if event.request_id and event.reason:
            events.append(event)
    return events


def row(event: events_pb2.AuditEvent) -> tuple[datetime, audit_repo.Entry]:
    at = event.at.ToDatetime(tzinfo=UTC) if event.HasField("at") else datetime.now(UTC)
    entry = audit_repo.Entry(
        actor=event.actor, action=ACTION_PREFIX + event.reason, target=event.model or event.route,
        before_digest=None, after_digest=None, ip=event.ip, request_id=event.request_id,
        detail={"reason": event.reason, "status": event.status, "message": event.message,
                "route": event.route, "model": event.model, "service": event.service},
        team_id=event.team_id)
    return at, entry


class RefusalRecorder:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def handle(self, messages: list[Msg]) -> None:
        events = decode(messages)
        if not events:
            return
        async with self._pool.connection() as conn, conn.transaction():
            await audit_repo.insert_gateway_refusals(conn, [row(event) for event in events])

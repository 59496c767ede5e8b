"""Gateway refusals as audit events: the edge (key and IP filter refusals) and the router
(budget, rate limits, policies, models not allowed) publish one `AuditEvent` per refused request
on `<env>.audit.refused`, through their buffered `EventPublisher` (an enqueue: no wait on NATS
in the refusal's path); accounting keeps each as one audit_log row."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from omniroute import telemetry
from omniroute.bus.publisher import EventPublisher
from omniroute.config.snapshot import ApiKey
from omniroute.settings import Settings
from omniroute.v1 import events_pb2

SUBJECT = "audit.refused"
ACTION_PREFIX = "gateway.refused."
# The router's refusals that are governance decisions (an upstream's own 429 is not one).
ROUTER_REASONS = frozenset({"budget_exhausted", "rate_limit_exceeded", "model_blocked",
                            "provider_not_allowed", "model_not_allowed"})
# The edge's key refusals (omniroute_edge.auth.AuthError.reason) that are audited; a request
# without any key is not (it names no one).
EDGE_KEY_REASONS = frozenset({"unknown_key", "key_rotated", "key_revoked", "key_expired", "key_disabled"})


def router_reason(error_class: str, key: ApiKey | None, key_id: str) -> str | None:
    """Why the router refused, as an audit reason (None: not a governance refusal). Team
    variants (team_budget_exhausted …) count as their key counterparts do. A key the router
    finds unusable (its snapshot learnt of a revocation before the edge's did) is named as the
    edge names it."""
    if error_class in ROUTER_REASONS or error_class.removeprefix("team_") in ROUTER_REASONS:
        return error_class
    if error_class != "invalid_api_key" or not key_id:
        return None
    if key is None:
        return "unknown_key"
    if key.revoked_at is not None:
        return "key_revoked"
    if key.expires_at is not None and key.expires_at <= datetime.now(UTC):
        return "key_expired"
    return "key_disabled" if not key.enabled else "key_rotated"


def key_actor(key_id: str) -> str:
    return f"key:{key_id}" if key_id else "key:unknown"


def publish_refusal(publisher: EventPublisher | None, settings: Settings, *, request_id: str, actor: str,
                    team_id: str, reason: str, status: int, message: str, route: str, model: str,
                    ip: str, service: str) -> None:
    """Enqueue one refusal (deduplicated by JetStream on its request id)."""
    if publisher is None:
        return
    at = Timestamp()
    at.FromNanoseconds(time.time_ns())
    event = events_pb2.AuditEvent(request_id=request_id, actor=actor, team_id=team_id, reason=reason,
                                  status=status, message=message[:500], route=route[:200],
                                  model=model[:200], ip=ip, service=service, at=at)
    publisher.publish(settings.subject(SUBJECT), event.SerializeToString(), msg_id=f"refused:{request_id}",
                      headers=telemetry.nats_headers())

"""Every MCP call the gateway answers becomes one `McpCallEvent` on `<env>.mcp.call`
(accounting: an mcp_calls row and an audit_log row); a refusal is also an `AuditEvent` on
`<env>.audit.refused`, as the router's model refusals are."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from google.protobuf.timestamp_pb2 import Timestamp

from omniroute import telemetry
from omniroute.bus.audit_events import key_actor, publish_refusal
from omniroute.bus.publisher import EventPublisher
from omniroute.config.snapshot import ApiKey
from omniroute.settings import Settings
from omniroute.v1 import events_pb2, mcp_pb2

SUBJECT = "mcp.call"
# outcome → the status an audit row names (what an HTTP caller would have been told)
_REFUSAL_STATUS = {"refused": 403, "rate_limited": 429}


@dataclass(slots=True)
class CallRecord:
    request: mcp_pb2.McpCallRequest
    key: ApiKey | None
    started_ns: int = field(default_factory=time.time_ns)
    started_mono: float = field(default_factory=time.monotonic)
    server_id: str = ""
    name: str = ""          # the server's own name (namespace removed), or the resource URI
    price_per_call_usd: float = 0.0

    def event(self, outcome: str, *, result_bytes: int = 0, error: str = "") -> events_pb2.McpCallEvent:
        args = self.request.arguments_json
        started = Timestamp()
        started.FromNanoseconds(self.started_ns)
        key = self.key
        return events_pb2.McpCallEvent(
            request_id=self.request.request_id, key_id=self.request.key_id,
            team_id=key.team_id if key else "", person_id=key.person_id if key else "",
            server_id=self.server_id, method=self.request.method, name=self.name or self.request.name,
            args_bytes=len(args), args_sha256=hashlib.sha256(args).hexdigest() if args else "",
            result_bytes=result_bytes, latency_ms=(time.monotonic() - self.started_mono) * 1000,
            outcome=outcome, error_message=error[:500], price_per_call_usd=self.price_per_call_usd,
            started_at=started, client_session_id=self.request.client_session_id)


class McpRecorder:
    def __init__(self, settings: Settings, publisher: EventPublisher | None) -> None:
        self._settings = settings
        self._publisher = publisher

    def finished(self, record: CallRecord, outcome: str, *, result_bytes: int = 0, error: str = "") -> None:
        if self._publisher is None:
            return
        event = record.event(outcome, result_bytes=result_bytes, error=error)
        self._publisher.publish(self._settings.subject(SUBJECT), event.SerializeToString(),
                                msg_id=f"mcp:{event.request_id}", headers=telemetry.nats_headers())

    def refused(self, record: CallRecord, kind: str, message: str) -> None:
        """A governance refusal (allow-list, rate limit): its call record, outcome refused,
        and the audit event the gateway's other refusals make."""
        self.finished(record, "refused", error=message)
        key = record.key
        publish_refusal(self._publisher, self._settings, request_id=record.request.request_id,
                        actor=key_actor(record.request.key_id), team_id=key.team_id if key else "",
                        reason=f"mcp_{kind}", status=_REFUSAL_STATUS.get(kind, 403), message=message,
                        route=record.request.method, model=record.request.name, ip="", service="router")

"""Requests the edge refuses itself are visible to operators.

Every refusal is one log line (logger `omniroute.edge.refused`): status, error class, reason,
route, model, key id. A refusal of an authenticated caller (a bad body, an unreadable model …)
also becomes a usage event, published to JetStream exactly like the router's (the same
`UsageEvent`, subject `<env>.usage.chat`, Nats-Msg-Id = request id), so accounting writes a
request-log row with its status, error class and reason. An unauthenticated request gets the
log line only: without a key it belongs to no one, and anyone could fill the usage table.
The caller's body is kept only while the admin's detailed logging is on (redacted and capped,
as the router keeps payloads)."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from starlette.requests import Request

from omniroute import telemetry
from omniroute.bus import audit_events
from omniroute.config.snapshot import ApiKey
from omniroute.redact import redact_payload
from omniroute.v1 import events_pb2
from omniroute_edge.auth import AuthError
from omniroute_edge.client_formats import ClientFormat
from omniroute_edge.state import EdgeState

log = logging.getLogger("omniroute.edge.refused")
PAYLOAD_LIMIT = 64 * 1024  # bytes of a logged body after redaction, as the router's payloads


def detailed_logging(state: EdgeState) -> bool:
    general: Any = state.config.current.settings.get("general")
    return isinstance(general, dict) and general.get("detailed_logging") is True


def record(request: Request, state: EdgeState, fmt: ClientFormat, *, status: int, error_class: str,
           reason: str, key: ApiKey | None, authenticated: bool, model: str = "", stream: bool = False,
           body: bytes = b"", started: float | None = None) -> str:
    """Log one refusal and, for an authenticated caller, publish its usage event. Returns the
    request id (the caller's answer may carry it)."""
    request_id = uuid.uuid4().hex
    key_id = key.id if key is not None else ""
    log.warning("refused %s %s: %d %s: %s (model=%r key=%s request_id=%s)", request.method,
                request.url.path, status, error_class, reason, model, key_id or "-", request_id)
    if not authenticated or state.publisher is None:
        return request_id
    started = started if started is not None else time.time()
    started_at = Timestamp()
    started_at.FromNanoseconds(int(started * 1e9))
    event = events_pb2.UsageEvent(
        request_id=request_id, key_id=key_id, requested_model=model, status=status,
        error_class=error_class, error_message=reason, stream=stream,
        client_format=fmt.proto,  # type: ignore[arg-type]
        started_at=started_at, latency_ms=(time.time() - started) * 1000)
    if body and detailed_logging(state):
        event.request_payload = redact_payload(body, PAYLOAD_LIMIT)
    state.publisher.publish(state.settings.subject("usage.chat"), event.SerializeToString(),
                            msg_id=request_id, headers=telemetry.nats_headers())
    return request_id


def audit_key_refusal(request: Request, state: EdgeState, refusal: AuthError, *, request_id: str,
                      model: str = "") -> None:
    """A refused key (unknown, rotated out, revoked, expired, disabled) is also an audit event,
    kept by accounting in the audit log under `key:<id>` and the key's team; a request that
    presented no key at all names no one and is not."""
    if refusal.reason not in audit_events.EDGE_KEY_REASONS:
        return
    key = refusal.key
    address = _client_address(request)
    if key is None and not UNKNOWN_KEYS.admit(address, time.monotonic()):
        return   # logged above all the same
    audit_events.publish_refusal(
        state.publisher, state.settings, request_id=request_id,
        actor=audit_events.key_actor(key.id if key else ""), team_id=key.team_id if key else "",
        reason=refusal.reason, status=401, message=refusal.message, route=request.url.path,
        model=model, ip=address, service="edge")


class PerAddress:
    """At most one audit event per address per `window_s` for secrets that name no key: anyone
    on the internet can send those, and each would be an audit row (every refusal keeps its log
    line). Bounded memory: the table is emptied when it reaches `max_addresses`."""

    def __init__(self, window_s: float = 60.0, max_addresses: int = 10_000) -> None:
        self._window_s = window_s
        self._max = max_addresses
        self._last: dict[str, float] = {}

    def admit(self, address: str, now: float) -> bool:
        last = self._last.get(address)
        if last is not None and now - last < self._window_s:
            return False
        if len(self._last) >= self._max:
            self._last.clear()
        self._last[address] = now
        return True


UNKNOWN_KEYS = PerAddress()


def _client_address(request: Request) -> str:
    # The IP filter middleware worked it out (trusted-proxy rules) and set it on every request.
    return request.headers.get("x-omniroute-client-ip") or (request.client.host if request.client else "")

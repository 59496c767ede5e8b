"""The record stage, first of every pipeline: the one place a request's record is filled in, from
the events of its answer (and what the stages put on the Call that the events do not say), and
published to JetStream as the request's UsageEvent when it ends."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from omniroute import telemetry
from omniroute.answers import CHUNK_KINDS
from omniroute.bus import audit_events
from omniroute.bus.publisher import EventPublisher
from omniroute.settings import Settings
from omniroute.v1 import common_pb2, events_pb2
from omniroute_router.pipeline import payloads
from omniroute_router.pipeline.call import Call, Events, Next
from omniroute_router.pipeline.payloads import Capture


@dataclass(slots=True)
class RequestRecord:
    """What the router learns about one request while serving it (filled by `Record` only)."""

    request_id: str
    key_id: str
    requested_model: str
    client_format: int
    stream: bool
    team_id: str = ""    # the key's team and person (usage by team / person)
    person_id: str = ""
    operation: int = common_pb2.OPERATION_CHAT
    started: float = field(default_factory=time.time)
    started_monotonic: float = field(default_factory=time.monotonic)
    provider: str = ""
    connection: str = ""
    model: str = ""
    status: int = 200
    error_class: str = ""
    error_message: str = ""  # the reason the caller was given (request logs)
    first_chunk_at: float = 0.0
    usage: common_pb2.Usage | None = None
    failed_attempts: list[str] = field(default_factory=list)
    combo: str = ""
    cache_hit: bool = False
    cache_kind: str = ""  # which cache answered: exact, semantic, idempotent (metrics label)
    capture: Capture | None = None  # payloads, only with detailed logging on (payloads.py)

    def add(self, event: common_pb2.AnswerEvent) -> None:
        """Note one event of the answer."""
        kind = event.WhichOneof("kind")
        if kind == "usage":
            self.usage = event.usage
        elif kind == "start":
            self._answered_by(event.start)
        elif kind in (*CHUNK_KINDS, "response"):
            self.mark_first_chunk()
            if self.capture is not None:
                self.capture.add(event)
        elif kind == "error":
            self.status, self.error_class = event.error.status, event.error.code
            self.error_message = event.error.message

    def close(self, call: Call) -> None:
        """What the stages noted on the call that the events do not say."""
        if not self.provider and call.attempts.failed_start is not None:
            self._answered_by(call.attempts.failed_start)
        if call.cache_kind == "idempotent":
            self.combo = ""  # a replayed answer does not count for its combo again
        self.failed_attempts = call.attempts.failed
        self.cache_hit, self.cache_kind = bool(call.cache_kind), call.cache_kind

    def _answered_by(self, start: common_pb2.ResponseStart) -> None:
        self.provider, self.connection, self.model = start.provider, start.connection, start.model
        self.combo = start.combo

    def mark_first_chunk(self) -> None:
        if not self.first_chunk_at:
            self.first_chunk_at = time.monotonic()

    def to_event(self) -> events_pb2.UsageEvent:
        ended = time.monotonic()
        started_at = Timestamp()
        started_at.FromNanoseconds(int(self.started * 1e9))
        event = events_pb2.UsageEvent(
            request_id=self.request_id, key_id=self.key_id, provider=self.provider,
            connection=self.connection, model=self.model, requested_model=self.requested_model,
            usage=self.usage, status=self.status, error_class=self.error_class,
            error_message=self.error_message,
            latency_ms=(ended - self.started_monotonic) * 1000,
            ttft_ms=(self.first_chunk_at - self.started_monotonic) * 1000 if self.first_chunk_at else 0.0,
            stream=self.stream, client_format=self.client_format,  # type: ignore[arg-type]
            started_at=started_at, failed_attempts=self.failed_attempts,
            combo=self.combo, cache_hit=self.cache_hit, cache_kind=self.cache_kind,
            team_id=self.team_id, person_id=self.person_id,
            operation=self.operation)  # type: ignore[arg-type]
        if self.capture is not None:
            event.request_payload, event.response_payload = self.capture.payloads()
        return event


class Record:
    """Watches the answer go by and publishes its usage event at the end. `subject_of` names the
    usage subject of a request ("" publishes nothing: token counts are free)."""

    def __init__(self, publisher: EventPublisher, settings: Settings,
                 subject_of: Callable[[Call], str]) -> None:
        self._publisher = publisher
        self._settings = settings
        self._subject_of = subject_of

    async def __call__(self, call: Call, next: Next) -> Events:
        request = call.request
        record = RequestRecord(request_id=request.request_id, key_id=request.key_id,
                               requested_model=request.model, client_format=request.client_format,
                               stream=request.stream, operation=request.operation)
        owner = call.snapshot.keys_by_id.get(request.key_id) if request.key_id else None
        if owner is not None:
            record.team_id, record.person_id = owner.team_id, owner.person_id or ""
        if request.operation == common_pb2.OPERATION_CHAT and payloads.enabled(call.snapshot):
            record.capture = Capture(request.body)
        try:
            async for event in next(call):
                record.add(event)
                if event.WhichOneof("kind") != "usage":  # for accounting only: the caller's
                    yield event                          # format carries usage in its chunks
        except BaseException as exc:  # includes cancellation by a client that went away
            if record.status < 400:
                record.status, record.error_class = 499, type(exc).__name__
            self._publish(call, record)
            raise
        # The answer ends (the caller sees its last byte) only once its usage is stored: a router
        # killed right after an answer loses no usage row (publish_confirmed does not wait while
        # NATS is away; the event is buffered then, as before).
        stored = self._publish(call, record, confirmed=True)
        if stored is not None:
            await stored

    def _publish(self, call: Call, record: RequestRecord, *,
                 confirmed: bool = False) -> Coroutine[Any, Any, bool] | None:
        """Publishes the usage event (and a refusal's audit event); with `confirmed`, returns
        the wait for JetStream to store the usage event instead of publishing unwaited."""
        stored = None
        record.close(call)
        request = call.request
        subject = self._subject_of(call)
        if subject:
            usage_subject = self._settings.subject(f"usage.{subject}")
            payload = record.to_event().SerializeToString()
            headers = telemetry.nats_headers()
            if confirmed:
                stored = self._publisher.publish_confirmed(usage_subject, payload, msg_id=record.request_id,
                                                           headers=headers)
            else:
                self._publisher.publish(usage_subject, payload, msg_id=record.request_id, headers=headers)
        key = call.snapshot.keys_by_id.get(request.key_id)
        reason = audit_events.router_reason(record.error_class, key, request.key_id)
        if reason is not None:
            # A governance refusal is also an audit event (kept in audit_log by accounting).
            audit_events.publish_refusal(
                self._publisher, self._settings, request_id=record.request_id,
                actor=audit_events.key_actor(request.key_id), team_id=key.team_id if key else "",
                reason=reason, status=record.status, message=record.error_message,
                route=subject or "token_count", model=request.model, ip="", service="router")
        return stored

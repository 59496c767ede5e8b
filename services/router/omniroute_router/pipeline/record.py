"""The usage event a request leaves behind, published to JetStream when it ends."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from google.protobuf.timestamp_pb2 import Timestamp

from omniroute import telemetry
from omniroute.bus.publisher import EventPublisher
from omniroute.settings import Settings
from omniroute.v1 import common_pb2, events_pb2
from omniroute_router.payloads import Capture


@dataclass(slots=True)
class RequestRecord:
    """What the router learns about one request while serving it."""

    request_id: str
    key_id: str
    requested_model: str
    client_format: int
    stream: bool
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
            combo=self.combo, cache_hit=self.cache_hit, cache_kind=self.cache_kind)
        if self.capture is not None:
            event.request_payload, event.response_payload = self.capture.payloads()
        return event


def publish_usage(publisher: EventPublisher, settings: Settings, record: RequestRecord) -> None:
    publisher.publish(settings.subject("usage.chat"), record.to_event().SerializeToString(),
                      msg_id=record.request_id, headers=telemetry.nats_headers())

"""What the executor needs to know about a provider family's wire protocol."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omniroute.v1 import common_pb2, executor_pb2

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StreamedEvent:
    """One upstream stream event, already parsed."""

    event: str      # SSE event name ("" when none)
    data: Json
    raw: bytes      # the event's data as received, for passthrough


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    native_format: common_pb2.ApiFormat.ValueType
    # (target, stream, provider body) → (url, headers). The body may be adjusted in place
    # (e.g. asking for usage in the stream).
    prepare: Callable[[executor_pb2.Target, bool, Json], tuple[str, dict[str, str]]]
    to_provider_request: Callable[[Json, str], Json]      # canonical → provider body
    response_to_canonical: Callable[[Json], Json]
    usage_of_response: Callable[[Json], common_pb2.Usage | None]
    usage_of_event: Callable[[StreamedEvent], common_pb2.Usage | None]
    parse_error: Callable[[int, bytes], tuple[str, str]]
    framing: str = "sse"    # sse or ndjson
    end_marker: str = "[DONE]"   # an SSE data line that ends the stream ("" when none)
    # A streaming decoder class: StreamDecoder().feed(event, data) / .finish() → canonical chunks
    stream_decoder: Callable[[], Any] | None = None

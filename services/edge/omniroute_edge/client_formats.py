"""The client-facing formats the edge answers in: framing, media type and error shape each,
built from the format registry (omniroute.formats.registry)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import orjson

from omniroute.formats import registry
from omniroute.formats.framing import encode_sse
from omniroute.v1 import common_pb2


@dataclass(frozen=True, slots=True)
class ClientFormat:
    wire: registry.WireFormat
    proto: common_pb2.ApiFormat = field(init=False)
    ndjson: bool = field(init=False)  # else SSE; a field, not a lookup: read per streamed chunk

    def __post_init__(self) -> None:
        object.__setattr__(self, "proto", common_pb2.ApiFormat.Value(self.wire.proto_name))
        object.__setattr__(self, "ndjson", self.wire.framing == "ndjson")

    @property
    def module(self) -> ModuleType:
        """The pure translator for this format (omniroute.formats.*)."""
        return self.wire.module

    @property
    def stream_media_type(self) -> str:
        return self.wire.stream_media_type

    @property
    def done_frame(self) -> bytes:
        """Sent after the last chunk of a stream that ended well (OpenAI's [DONE])."""
        terminator: bytes | None = self.module.STREAM_TERMINATOR
        return terminator or b""

    def frame(self, event: str, data: bytes) -> bytes:
        if self.ndjson:
            return data + b"\n"
        return encode_sse(data, event)

    def error_json(self, status: int, message: str, *, type_: str | None = None,
                   code: str | None = None, param: str | None = None) -> bytes:
        body: dict[str, Any] = self.module.error_body(status, message, type_=type_, code=code, param=param)
        return orjson.dumps(body)


OPENAI_CHAT = ClientFormat(registry.OPENAI_CHAT)
OPENAI_RESPONSES = ClientFormat(registry.OPENAI_RESPONSES)
ANTHROPIC = ClientFormat(registry.ANTHROPIC)
GEMINI = ClientFormat(registry.GEMINI)
OLLAMA = ClientFormat(registry.OLLAMA)

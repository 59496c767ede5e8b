"""The client-facing formats the edge answers in: framing, media type and error shape each."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import orjson

from omniroute.formats import anthropic, gemini, ollama, openai_chat, openai_responses
from omniroute.formats.framing import encode_sse
from omniroute.v1 import common_pb2


@dataclass(frozen=True, slots=True)
class ClientFormat:
    proto: int
    module: ModuleType             # the pure translator for this format (omniroute.formats.*)
    stream_media_type: str = "text/event-stream"
    ndjson: bool = False

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


OPENAI_CHAT = ClientFormat(proto=common_pb2.OPENAI_CHAT, module=openai_chat)
# Typed SSE: the event name equals the JSON's `type` (response.created … response.completed).
OPENAI_RESPONSES = ClientFormat(proto=common_pb2.OPENAI_RESPONSES, module=openai_responses)
# SSE with event names (message_start … message_stop); a failure is `event: error`.
ANTHROPIC = ClientFormat(proto=common_pb2.ANTHROPIC, module=anthropic)
# `data:` frames of GenerateContentResponse, no event names and no terminator; errors are
# {"error": {"code", "message", "status"}}.
GEMINI = ClientFormat(proto=common_pb2.GEMINI, module=gemini)
# One JSON object per line; the last has `done: true`; errors are {"error": "<message>"}.
OLLAMA = ClientFormat(proto=common_pb2.OLLAMA, module=ollama, stream_media_type="application/x-ndjson",
                      ndjson=True)

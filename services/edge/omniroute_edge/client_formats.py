"""The client-facing formats the edge answers in: framing, media type and error shape each."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import orjson
from omniroute.formats import openai_chat
from omniroute.formats.framing import encode_sse
from omniroute.v1 import common_pb2


@dataclass(frozen=True, slots=True)
class ClientFormat:
    proto: common_pb2.ApiFormat.ValueType
    module: ModuleType             # the pure translator for this format (omniroute.formats.*)
    stream_media_type: str = "text/event-stream"
    done_frame: bytes = b""        # sent after the last chunk (OpenAI's [DONE])
    ndjson: bool = False

    def frame(self, event: str, data: bytes) -> bytes:
        if self.ndjson:
            return data + b"\n"
        return encode_sse(data, event)

    def error_json(self, status: int, message: str, *, type_: str | None = None,
                   code: str | None = None, param: str | None = None) -> bytes:
        body: dict[str, Any] = self.module.error_body(status, message, type_=type_, code=code, param=param)
        return orjson.dumps(body)


OPENAI_CHAT = ClientFormat(proto=common_pb2.OPENAI_CHAT, module=openai_chat,
                           done_frame=b"data: [DONE]\n\n")

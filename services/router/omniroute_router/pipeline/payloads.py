"""Detailed logging: the request and answer payloads a usage event carries when the admin's
general setting `detailed_logging` is on. Redacted and capped here, before anything leaves the
router. Off (the default), no Capture exists and the request path does nothing more than one
look-up of the setting."""

from __future__ import annotations

from typing import Any

import orjson

from omniroute.answers import chunks_of
from omniroute.config.snapshot import ConfigSnapshot
from omniroute.formats.canonical import StreamAccumulator
from omniroute.redact import redact_payload
from omniroute.v1 import common_pb2

LIMIT = 64 * 1024  # bytes of each payload, after redaction (longer ones are cut with a marker)
_RAW_LIMIT = 4 * LIMIT  # raw chunks kept for a stream the router cannot fold (passthrough)
_CANONICAL = (common_pb2.API_FORMAT_UNSPECIFIED, common_pb2.OPENAI_CHAT)


def enabled(snapshot: ConfigSnapshot) -> bool:
    general: Any = snapshot.settings.get("general")
    return isinstance(general, dict) and general.get("detailed_logging") is True


class Capture:
    """Collects one request's answer while it streams; `payloads()` gives what is published."""

    __slots__ = ("_accumulator", "_raw", "_raw_size", "_request", "_response")

    def __init__(self, request_body: bytes) -> None:
        self._request = request_body
        self._response: bytes | None = None
        self._accumulator: StreamAccumulator | None = None
        self._raw: list[bytes] = []
        self._raw_size = 0

    def add(self, event: common_pb2.AnswerEvent) -> None:
        kind = event.WhichOneof("kind")
        if kind == "response":
            self._response = event.response
            return
        canonical = event.format in _CANONICAL
        for chunk in chunks_of(event):
            if canonical and self._fold(chunk.data):
                continue
            self._keep_raw(chunk)

    def _fold(self, data: bytes) -> bool:
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(parsed, dict):
            return False
        if self._accumulator is None:
            self._accumulator = StreamAccumulator()
        self._accumulator.add(parsed)
        return True

    def _keep_raw(self, chunk: common_pb2.Chunk) -> None:
        """A chunk in the caller's own format (passthrough) is kept as an SSE line."""
        if self._raw_size >= _RAW_LIMIT:
            return
        line = (b"event: " + chunk.event.encode() + b"\n" if chunk.event else b"") + \
            b"data: " + chunk.data + b"\n\n"
        self._raw.append(line)
        self._raw_size += len(line)

    def payloads(self) -> tuple[bytes, bytes]:
        """(request, response): redacted and capped; response empty when nothing came back."""
        response = self._response
        if response is None and self._accumulator is not None:
            response = orjson.dumps(self._accumulator.result())
            if self._raw:
                response += b"\n\n" + b"".join(self._raw)
        elif response is None:
            response = b"".join(self._raw)
        return (redact_payload(self._request, LIMIT) if self._request else b"",
                redact_payload(response, LIMIT) if response else b"")

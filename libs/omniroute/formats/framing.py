"""Stream framing: Server-Sent Events and newline-delimited JSON, both directions.

Parsers are incremental: feed them bytes as they arrive and they return whole events, keeping
any partial frame for the next call, so no stream is ever buffered beyond one frame.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass


@dataclass(slots=True)
class SSEEvent:
    event: str  # "" when the frame had no `event:` line
    data: str


class SSEParser:
    """Incremental parser for text/event-stream (WHATWG rules: LF, CRLF or CR line ends)."""

    def __init__(self) -> None:
        self._buffer = ""
        self._event = ""
        self._data: list[str] = []
        # Incremental: a character whose UTF-8 bytes are split across reads is decoded whole.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, chunk: bytes | str) -> list[SSEEvent]:
        text = self._decoder.decode(chunk) if isinstance(chunk, bytes) else chunk
        buffer = self._buffer + text
        events: list[SSEEvent] = []
        start = 0  # one pass and one final slice: a read of many frames is not re-copied per line
        for match in _LINE_END.finditer(buffer):
            if match.group() == "\r" and match.end() == len(buffer):
                break  # a CR at the end may be the first half of CRLF
            self._take_line(buffer[start:match.start()], events)
            start = match.end()
        self._buffer = buffer[start:]
        return events

    def flush(self) -> list[SSEEvent]:
        """End of stream: a final frame without its blank line still counts."""
        events: list[SSEEvent] = []
        if self._buffer:
            self._take_line(self._buffer.rstrip("\r"), events)
            self._buffer = ""
        self._take_line("", events)
        return events

    def _take_line(self, line: str, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                events.append(SSEEvent(self._event, "\n".join(self._data)))
            self._event, self._data = "", []
            return
        if line.startswith(":"):
            return  # comment / keep-alive
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value


_LINE_END = re.compile(r"\r\n|\r|\n")


def encode_sse(data: bytes, event: str = "") -> bytes:
    """One SSE frame. `data` must be a single line (compact JSON is)."""
    if event:
        return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
    return b"data: " + data + b"\n\n"


class NDJSONParser:
    """Incremental parser for newline-delimited JSON: returns complete lines."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        return [line for line in lines if line.strip()]

    def flush(self) -> list[bytes]:
        rest, self._buffer = self._buffer, b""
        return [rest] if rest.strip() else []

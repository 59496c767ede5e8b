"""Anthropic Messages streams ↔ canonical chunks, and what answers and streams share: usage,
stop reasons and error objects.

The wire order: `message_start` (ids, input usage), `ping`, then per content block
`content_block_start` / `content_block_delta`… / `content_block_stop`, then `message_delta`
(stop_reason and cumulative usage) and `message_stop`. Errors mid-stream are an `error` event.
"""

from __future__ import annotations

from typing import Any

from omniroute.formats import canonical as c
from omniroute.formats.errors import UpstreamStreamError, fallback_message, load_json

Json = dict[str, Any]
Event = tuple[str, Json]

STOP_TO_CANONICAL = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
                     "max_tokens": "length", "model_context_window_exceeded": "length",
                     "tool_use": "tool_calls", "refusal": "content_filter"}
STOP_FROM_CANONICAL = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                       "content_filter": "refusal"}
_STATUS_BY_TYPE = {"invalid_request_error": 400, "authentication_error": 401,
                   "permission_error": 403, "not_found_error": 404, "rate_limit_error": 429,
                   "overloaded_error": 529, "api_error": 500, "timeout_error": 504}


# --- usage and stop reasons ------------------------------------------------------------------

def usage_to_canonical(usage: Any) -> c.Usage:
    """Anthropic's input_tokens excludes cache reads and writes; OpenAI's prompt includes them."""
    if not isinstance(usage, dict):
        return c.Usage()
    cached = usage.get("cache_read_input_tokens") or 0
    creation = usage.get("cache_creation_input_tokens") or 0
    details = usage.get("output_tokens_details") or {}
    return c.Usage(prompt=(usage.get("input_tokens") or 0) + cached + creation,
                   completion=usage.get("output_tokens") or 0, cached=cached,
                   cache_creation=creation, reasoning=details.get("thinking_tokens") or 0)


def usage_from_canonical(usage: c.Usage) -> Json:
    return {"input_tokens": max(usage.prompt - usage.cached - usage.cache_creation, 0),
            "output_tokens": usage.completion,
            "cache_read_input_tokens": usage.cached,
            "cache_creation_input_tokens": usage.cache_creation}



# --- errors ----------------------------------------------------------------------------------

_TYPE_BY_STATUS = {400: "invalid_request_error", 401: "authentication_error",
                   402: "billing_error", 403: "permission_error", 404: "not_found_error",
                   413: "request_too_large", 422: "invalid_request_error",
                   429: "rate_limit_error", 504: "timeout_error", 529: "overloaded_error"}
# OpenAI-style type names other modules may pass in → Anthropic's names.
_KNOWN_TYPES = {*_STATUS_BY_TYPE, *_TYPE_BY_STATUS.values()}
_TYPE_ALIASES = {"server_error": "api_error", "conflict_error": "invalid_request_error",
                 "insufficient_quota": "rate_limit_error"}


def error_type_for_status(status: int) -> str:
    if status in _TYPE_BY_STATUS:
        return _TYPE_BY_STATUS[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(status: int, message: str, *, type_: str | None = None, code: str | None = None,
               param: str | None = None) -> Json:
    """{"type": "error", "error": {"type", "message"}} with Anthropic's type names. A type
    from another vocabulary (Gemini's RESOURCE_EXHAUSTED, a generic invalid_request_error on a
    404 …) gives way to the type Anthropic uses for that status."""
    kind = _TYPE_ALIASES.get(type_ or "", type_)
    if not kind or _STATUS_BY_TYPE.get(kind, status) != status or kind not in _KNOWN_TYPES:
        kind = error_type_for_status(status)
    return {"type": "error", "error": {"type": kind, "message": message}}


def parse_error(status: int, body: bytes | str) -> tuple[str, str]:
    data = load_json(body)
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        error = data["error"]
        if error.get("message"):
            return str(error.get("type") or error_type_for_status(status)), str(error["message"])
    return error_type_for_status(status), fallback_message(status, body)


# --- streams ---------------------------------------------------------------------------------

class StreamDecoder:
    """Anthropic upstream events → canonical chunks."""

    def __init__(self) -> None:
        self._build = c.ChunkBuilder()
        self._usage: Json = {}
        self._blocks: dict[int, str] = {}  # Anthropic block index → kind
        self._tool_index: dict[int, int] = {}  # Anthropic block index → canonical tool index
        self._json_tool_used = False
        self._usage_sent = False

    def feed(self, event: str, data: Json) -> list[Json]:
        kind = event or str(data.get("type", ""))
        handler = getattr(self, f"_on_{kind}", None)
        return handler(data) if handler else []  # ping and future events carry nothing

    def _on_message_start(self, data: Json) -> list[Json]:
        message = data.get("message") or {}
        self._build.id = str(message.get("id") or self._build.id)
        self._build.model = str(message.get("model") or "")
        self._usage.update(message.get("usage") or {})
        return []

    def _on_content_block_start(self, data: Json) -> list[Json]:
        index = int(data.get("index", 0))
        block = data.get("content_block") or {}
        kind = str(block.get("type", ""))
        self._blocks[index] = kind
        if kind == "tool_use" and block.get("name") == c.JSON_TOOL_NAME:
            self._blocks[index] = "json_tool"
            self._json_tool_used = True
        elif kind == "tool_use":
            tool_index = len(self._tool_index)
            self._tool_index[index] = tool_index
            return [self._build.tool_call(tool_index, id_=str(block.get("id", "")),
                                          name=str(block.get("name", "")))]
        elif kind == "redacted_thinking":
            return [self._build.reasoning_ext("redacted_reasoning", [str(block.get("data", ""))])]
        elif kind == "text" and block.get("text"):
            return [self._build.text(str(block["text"]))]
        return []

    def _on_content_block_delta(self, data: Json) -> list[Json]:
        index = int(data.get("index", 0))
        delta = data.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return [self._build.text(str(delta.get("text", "")))]
        if kind == "thinking_delta":
            return [self._build.reasoning(str(delta.get("thinking", "")))]
        if kind == "signature_delta":
            return [self._build.reasoning_ext("reasoning_signature", str(delta.get("signature")))]
        if kind == "input_json_delta" and delta.get("partial_json"):
            partial = str(delta["partial_json"])
            if self._blocks.get(index) == "json_tool":
                return [self._build.text(partial)]  # structured output: the JSON is the text
            if index in self._tool_index:
                return [self._build.tool_call(self._tool_index[index], arguments=partial)]
        return []

    def _on_message_delta(self, data: Json) -> list[Json]:
        self._usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
        reason = (data.get("delta") or {}).get("stop_reason")
        if not reason:
            return []
        finish = STOP_TO_CANONICAL.get(str(reason), "stop")
        if finish == "tool_calls" and self._json_tool_used and not self._tool_index:
            finish = "stop"
        return [self._build.finish(finish)]

    def _on_message_stop(self, data: Json) -> list[Json]:
        return self.finish()

    def _on_error(self, data: Json) -> list[Json]:
        error = data.get("error") or {}
        kind = str(error.get("type") or "api_error")
        raise UpstreamStreamError(str(error.get("message") or "upstream stream error"),
                                  status=_STATUS_BY_TYPE.get(kind, 500), type_=kind)

    def finish(self) -> list[Json]:
        if self._usage_sent or not self._usage:
            return []
        self._usage_sent = True
        return [self._build.usage(usage_to_canonical(self._usage))]


class StreamEncoder:
    """Canonical chunks → Anthropic events, in the API's order. Input token counts are only
    known at the end of a canonical stream, so message_start carries zeros and message_delta
    the real cumulative usage (the SDKs take input counts from message_delta too)."""

    def __init__(self, *, model: str, request_id: str, include_usage: bool = True) -> None:
        self.model = model
        self.id = request_id if request_id.startswith("msg_") else f"msg_{request_id}"
        self._started = False
        self._done = False
        self._next_index = 0
        self._open: tuple[str, int] | None = None  # (kind, Anthropic index); kind may be tool:N
        self._stop_reason: str | None = None
        self._usage: c.Usage | None = None

    def encode(self, chunk: Json) -> list[Event]:
        if self._done:
            return []
        events = self._start()
        for piece in c.read_chunk(chunk):
            events.extend(self._piece(piece))
        return events

    def _start(self) -> list[Event]:
        if self._started:
            return []
        self._started = True
        message: Json = {"id": self.id, "type": "message", "role": "assistant", "model": self.model,
                         "content": [], "stop_reason": None, "stop_sequence": None,
                         "usage": {"input_tokens": 0, "output_tokens": 0}}
        return [("message_start", {"type": "message_start", "message": message}),
                ("ping", {"type": "ping"})]

    def _piece(self, piece: c.Piece) -> list[Event]:
        if piece.kind == "reasoning":
            events = self._ensure_block("thinking", {"type": "thinking", "thinking": "",
                                                     "signature": ""})
            return [*events, self._delta({"type": "thinking_delta", "thinking": piece.text})]
        if piece.kind == "signature":
            events = self._ensure_block("thinking", {"type": "thinking", "thinking": "",
                                                     "signature": ""})
            events.append(self._delta({"type": "signature_delta", "signature": piece.text}))
            return events + self._close()
        if piece.kind == "redacted":
            events = self._close()
            events += self._open_block("redacted", {"type": "redacted_thinking", "data": piece.text})
            return events + self._close()
        if piece.kind == "text":
            events = self._ensure_block("text", {"type": "text", "text": ""})
            return [*events, self._delta({"type": "text_delta", "text": piece.text})]
        if piece.kind == "tool_start":
            events = self._close()
            return events + self._open_block(
                f"tool:{piece.index}", {"type": "tool_use", "id": piece.id or c.new_id("toolu_"),
                                        "name": piece.name, "input": {}})
        if piece.kind == "tool_args":
            if self._open is None or self._open[0] != f"tool:{piece.index}":
                return []  # arguments for a block already closed cannot be sent any more
            return [self._delta({"type": "input_json_delta", "partial_json": piece.text})]
        if piece.kind == "finish":
            self._stop_reason = STOP_FROM_CANONICAL.get(piece.text, "end_turn")
            return self._close()
        if piece.kind == "usage":
            self._usage = piece.usage
            return self._end()
        return []

    def _ensure_block(self, kind: str, block: Json) -> list[Event]:
        if self._open is not None and self._open[0] == kind:
            return []
        return self._close() + self._open_block(kind, block)

    def _open_block(self, kind: str, block: Json) -> list[Event]:
        index = self._next_index
        self._next_index += 1
        self._open = (kind, index)
        return [("content_block_start", {"type": "content_block_start", "index": index,
                                         "content_block": block})]

    def _delta(self, delta: Json) -> Event:
        assert self._open is not None
        return ("content_block_delta", {"type": "content_block_delta", "index": self._open[1],
                                        "delta": delta})

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        index = self._open[1]
        self._open = None
        return [("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _end(self) -> list[Event]:
        if self._done:
            return []
        events = self._start() + self._close()
        self._done = True
        usage = usage_from_canonical(self._usage or c.Usage())
        events.append(("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": self._stop_reason or "end_turn", "stop_sequence": None},
            "usage": usage}))
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    def finish(self) -> list[Event]:
        return self._end()

    def error(self, status: int, message: str, type_: str) -> list[Event]:
        self._done = True
        return [("error", error_body(status, message, type_=type_))]

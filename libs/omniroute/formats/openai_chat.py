"""OpenAI chat completions: the canonical format itself, so translation is validation.

Canonical extensions (fields OpenAI does not define, used to carry other formats' meaning)
are documented in omniroute.formats.canonical; they are stripped before a body goes to an
OpenAI-compatible upstream or back to an OpenAI client.

Streams end with the literal `data: [DONE]` frame, which is framing, not JSON: encoders do not
return it, the edge writes STREAM_TERMINATOR after `finish()`, and decoders never see it
(the caller drops `[DONE]` before parsing JSON).
"""

from __future__ import annotations

from typing import Any

from omniroute.formats import canonical as c
from omniroute.formats.errors import FormatError, UpstreamStreamError, fallback_message, load_json

FORMAT = "openai_chat"
STREAM_TERMINATOR = b"data: [DONE]\n\n"

Json = dict[str, Any]
Event = tuple[str, Json]


def request_to_canonical(body: Any, *, model: str | None = None,
                         stream: bool | None = None) -> Json:
    """Validate a chat-completions request; the canonical request is (a copy of) the same
    object, with `model` / `stream` overridden when the route supplies them."""
    if not isinstance(body, dict):
        raise FormatError("The request body must be a JSON object.")
    body = dict(body)
    if model is not None:
        body["model"] = model
    if stream is not None:
        body["stream"] = stream
    _validate(body)
    return body


def _validate(body: Json) -> None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise FormatError("you must provide a model parameter", param="model", code="missing_model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise FormatError("'messages' must be a non-empty array", param="messages",
                          code="invalid_messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise FormatError(f"messages[{index}] must be an object with a 'role'",
                              param=f"messages[{index}]")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise FormatError("'stream' must be a boolean", param="stream")
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise FormatError("'tools' must be an array", param="tools")
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise FormatError(f"'{key}' must be a number", param=key)
    for key in ("max_tokens", "max_completion_tokens", "n", "seed"):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise FormatError(f"'{key}' must be an integer", param=key)


def canonical_to_request(canonical: Json, model: str) -> Json:
    """Canonical → an OpenAI-compatible upstream body: extensions stripped, and usage asked
    for in streams (accounting needs it)."""
    body: Json = c.strip_extensions(canonical)
    body["model"] = model
    if body.get("stream"):
        options = dict(body.get("stream_options") or {})
        options["include_usage"] = True
        body["stream_options"] = options
    return body


def wants_usage_in_stream(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


# --- non-streaming ---------------------------------------------------------------------------

def response_to_canonical(body: Any) -> Json:
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
        raise FormatError("upstream answer is not a chat.completion object", status=502)
    body = dict(body)
    body["choices"] = [_normalize_choice(choice) for choice in body["choices"]
                       if isinstance(choice, dict)]
    return body


def _normalize_choice(choice: Json) -> Json:
    # Some OpenAI-compatible servers (OpenRouter, Ollama's /v1) name it `reasoning`.
    message = dict(choice.get("message") or {})
    if "reasoning_content" not in message and isinstance(message.get("reasoning"), str):
        message["reasoning_content"] = message.pop("reasoning")
    return {**choice, "message": message}


def canonical_to_response(canonical: Json) -> Json:
    body: Json = c.strip_extensions(canonical)
    body.setdefault("object", "chat.completion")
    return body


# --- streaming -------------------------------------------------------------------------------

class StreamDecoder:
    """OpenAI-compatible upstream chunks → canonical chunks. Usage is held back and emitted
    as the final usage-only chunk, whichever chunk the upstream put it in."""

    def __init__(self) -> None:
        self._usage: Json | None = None
        self._last: Json = {}

    def feed(self, event: str, data: Json) -> list[Json]:
        if "error" in data and "choices" not in data:
            kind, message = _error_fields(data)
            raise UpstreamStreamError(message, type_=kind)
        if isinstance(data.get("usage"), dict):
            self._usage = data["usage"]
        choices = data.get("choices") or []
        self._last = data
        if not choices:
            return []
        chunk = {k: v for k, v in data.items() if k != "usage"}
        chunk["choices"] = [_normalize_delta(choice) for choice in choices]
        return [chunk]

    def finish(self) -> list[Json]:
        if self._usage is None:
            return []
        return [{"id": self._last.get("id", ""), "object": "chat.completion.chunk",
                 "created": self._last.get("created", c.now()),
                 "model": self._last.get("model", ""), "choices": [], "usage": self._usage}]


def _normalize_delta(choice: Json) -> Json:
    delta = dict(choice.get("delta") or {})
    if "reasoning_content" not in delta and isinstance(delta.get("reasoning"), str):
        delta["reasoning_content"] = delta.pop("reasoning")
    return {**choice, "delta": delta}


class StreamEncoder:
    """Canonical chunks → the chunks an OpenAI client expects: one id and model throughout,
    `usage: null` on content chunks and a usage-only chunk only when the client asked for
    it (`stream_options.include_usage`)."""

    def __init__(self, *, model: str, request_id: str, include_usage: bool = True) -> None:
        self.model = model
        self.id = request_id if request_id.startswith("chatcmpl-") else f"chatcmpl-{request_id}"
        self.include_usage = include_usage
        self.created = c.now()
        self._finished = False
        self._usage_sent = False

    def encode(self, chunk: Json) -> list[Event]:
        body: Json = c.strip_extensions(chunk)
        body.update(id=self.id, object="chat.completion.chunk", created=self.created,
                    model=self.model)
        choices = body.get("choices") or []
        if any(choice.get("finish_reason") for choice in choices):
            self._finished = True
        if not choices:
            if not self.include_usage or not body.get("usage") or self._usage_sent:
                return []
            self._usage_sent = True
            return [("", body)]
        if self.include_usage:
            body["usage"] = None
        else:
            body.pop("usage", None)
        return [("", body)]

    def finish(self) -> list[Event]:
        if self._finished:
            return []
        self._finished = True
        chunk: Json = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                       "model": self.model,
                       "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        return [("", chunk)]

    def error(self, status: int, message: str, type_: str) -> list[Event]:
        return [("", error_body(status, message, type_=type_))]


# --- errors ----------------------------------------------------------------------------------

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_type_for_status(status: int) -> str:
    if status in _TYPE_BY_STATUS:
        return _TYPE_BY_STATUS[status]
    return "server_error" if status >= 500 else "invalid_request_error"


def error_body(status: int, message: str, *, type_: str | None = None, code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    """OpenAI's error object: {"error": {"message", "type", "param", "code"}}."""
    return {"error": {"message": message, "type": type_ or error_type_for_status(status),
                      "param": param, "code": code}}


def parse_error(status: int, body: bytes | str) -> tuple[str, str]:
    """(type, message) from an OpenAI-style error body; any garbage gives a usable pair."""
    data = load_json(body)
    if isinstance(data, dict):
        kind, message = _error_fields(data)
        if message:
            return kind or error_type_for_status(status), message
    return error_type_for_status(status), fallback_message(status, body)


def _error_fields(data: Json) -> tuple[str, str]:
    error = data.get("error")
    if isinstance(error, dict):
        return str(error.get("type") or error.get("code") or ""), str(error.get("message") or "")
    if isinstance(error, str):
        return "", error
    return "", str(data.get("message") or "")

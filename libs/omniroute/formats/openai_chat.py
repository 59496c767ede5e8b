"""OpenAI chat completions: the canonical format itself, so translation is validation.

Canonical extensions (fields OpenAI does not define, used to carry other formats' meaning)
are documented in omniroute.formats.canonical.
"""

from __future__ import annotations

from typing import Any

from omniroute.formats.errors import FormatError

FORMAT = "openai_chat"


def request_to_canonical(body: Any) -> dict[str, Any]:
    """Validate a chat-completions request; the canonical request is the same object."""
    if not isinstance(body, dict):
        raise FormatError("The request body must be a JSON object.")
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
    return body


def canonical_to_request(canonical: dict[str, Any], model: str) -> dict[str, Any]:
    return {**canonical, "model": model}


def wants_usage_in_stream(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


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

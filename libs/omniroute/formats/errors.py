"""The error a translator raises for input it cannot accept (answered as a 4xx)."""

from __future__ import annotations


class FormatError(ValueError):
    """Bad input: the caller gets `status` with `message` in its own format's error shape."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code


class UpstreamStreamError(Exception):
    """An error event inside a provider's stream (raised by a StreamDecoder's feed), so the
    executor can end the client's stream with that format's error event."""

    def __init__(self, message: str, *, status: int = 500, type_: str = "api_error") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type_


def load_json(body: bytes | str) -> object:
    """Parse an error body leniently: None for anything that is not JSON."""
    import json

    try:
        return json.loads(body)
    except (ValueError, TypeError):
        return None


def fallback_message(status: int, body: bytes | str) -> str:
    """A readable message from a body that is not the expected error JSON (HTML, text…)."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else str(body)
    text = " ".join(text.split())[:500]
    return text or f"upstream returned HTTP {status}"

"""Which model an answer names: the one the client asked for (`provider/model`, an alias, a
combo), as Anthropic's and OpenAI's own APIs echo the requested model. The streamed and the
whole answer name the same model, translated or passed through: the encoders are given the
requested name, and a passthrough answer (the provider's own bytes) gets it here."""

from __future__ import annotations

from typing import Any

import orjson

# Where the formats name the model: OpenAI chat chunks, Ollama lines and whole answers at the
# top (`model`), Gemini in `modelVersion`, Anthropic's message_start in `message`, the
# Responses lifecycle events in `response`.
_NESTED = ("message", "response")


def renamed(data: bytes, model: str) -> bytes:
    """`data` (one JSON answer or stream event in the caller's format) naming `model`;
    unchanged when it names no model or is not JSON."""
    if not model or b'"model' not in data:  # most Anthropic / Responses events: no parse
        return data
    try:
        parsed: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        return data
    if not isinstance(parsed, dict) or not _rename(parsed, model):
        return data
    return orjson.dumps(parsed)


def _rename(obj: dict[str, Any], model: str) -> bool:
    changed = False
    for key in ("model", "modelVersion"):
        if isinstance(obj.get(key), str) and obj[key] != model:
            obj[key] = model
            changed = True
    for key in _NESTED:
        nested = obj.get(key)
        if isinstance(nested, dict) and isinstance(nested.get("model"), str) and nested["model"] != model:
            nested["model"] = model
            changed = True
    return changed

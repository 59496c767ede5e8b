"""Format name → translator module, and the proto enum names of the formats.

Every module has the same interface: request_to_canonical(body, *, model=None, stream=None),
canonical_to_request(canonical, model), response_to_canonical(body),
canonical_to_response(canonical), StreamDecoder, StreamEncoder, error_body(status, message,
*, type_, code, param), parse_error(status, body), and STREAM_TERMINATOR (bytes the edge
writes after the encoder's last event, or None).
"""

from __future__ import annotations

from types import ModuleType

from omniroute.formats import anthropic, gemini, ollama, openai_chat, openai_responses

MODULES: dict[str, ModuleType] = {
    "openai_chat": openai_chat,
    "openai_responses": openai_responses,
    "anthropic": anthropic,
    "gemini": gemini,
    "ollama": ollama,
}

# The omniroute.v1.ApiFormat enum value names (protos/omniroute/v1/common.proto).
PROTO_NAMES: dict[str, str] = {name: name.upper() for name in MODULES}
FORMATS_BY_PROTO_NAME: dict[str, str] = {proto: name for name, proto in PROTO_NAMES.items()}


def module_for(name: str) -> ModuleType:
    """The translator module of a format name or proto enum name; KeyError when unknown."""
    key = FORMATS_BY_PROTO_NAME.get(name, name)
    if key not in MODULES:
        raise KeyError(f"unknown format {name!r}")
    return MODULES[key]

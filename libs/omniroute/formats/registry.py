"""The wire formats OmniRoute speaks, in one place: which exist, their translator modules, their
proto enum names, how their streams are framed, and which one each executor family speaks. The
edge's client formats (`omniroute_edge.client_formats`), the executor's families and its
operations' error parsers, and the router's passthrough choice look formats up here.

Every translator module has the same interface: request_to_canonical(body, *, model=None,
stream=None), canonical_to_request(canonical, model), response_to_canonical(body),
canonical_to_response(canonical), StreamDecoder, StreamEncoder, error_body(status, message,
*, type_, code, param), parse_error(status, body), and STREAM_TERMINATOR (bytes the edge
writes after the encoder's last event, or None).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from omniroute.formats import anthropic, gemini, ollama, openai_chat, openai_responses


@dataclass(frozen=True, slots=True)
class WireFormat:
    name: str          # the translator module's FORMAT ("openai_chat")
    # The omniroute.v1.ApiFormat value name (protos/omniroute/v1/common.proto); by name, so that
    # this package stays free of generated code.
    proto_name: str
    module: ModuleType  # the pure translator
    framing: str = "sse"  # how its streams are framed: "sse" (Server-Sent Events) or "ndjson"

    @property
    def stream_media_type(self) -> str:
        return "application/x-ndjson" if self.framing == "ndjson" else "text/event-stream"


# The canonical format; its streams end with `data: [DONE]`.
OPENAI_CHAT = WireFormat("openai_chat", "OPENAI_CHAT", openai_chat)
# Typed SSE: the event name equals the JSON's `type` (response.created … response.completed).
OPENAI_RESPONSES = WireFormat("openai_responses", "OPENAI_RESPONSES", openai_responses)
# SSE with event names (message_start … message_stop); a failure is `event: error`.
ANTHROPIC = WireFormat("anthropic", "ANTHROPIC", anthropic)
# `data:` frames of GenerateContentResponse, no event names and no terminator; errors are
# {"error": {"code", "message", "status"}}.
GEMINI = WireFormat("gemini", "GEMINI", gemini)
# One JSON object per line; the last has `done: true`; errors are {"error": "<message>"}.
OLLAMA = WireFormat("ollama", "OLLAMA", ollama, framing="ndjson")

FORMATS: dict[str, WireFormat] = {wire.name: wire for wire in
                                  (OPENAI_CHAT, OPENAI_RESPONSES, ANTHROPIC, GEMINI, OLLAMA)}
MODULES: dict[str, ModuleType] = {name: wire.module for name, wire in FORMATS.items()}
PROTO_NAMES: dict[str, str] = {name: wire.proto_name for name, wire in FORMATS.items()}
_BY_PROTO_NAME: dict[str, WireFormat] = {wire.proto_name: wire for wire in FORMATS.values()}

# The wire format each chat family of the executor speaks (omniroute_executor.families: one
# family per name here; the catalog's provider types name these families). The executor reads
# it for the body and answer it translates; the router for passthrough (a caller of that format
# is passed through) and provider-side token counts. Families with no chat API (deepgram,
# assemblyai: transcription only) speak none.
FAMILY_FORMATS: dict[str, WireFormat] = {
    "openai": OPENAI_CHAT, "openai-responses": OPENAI_RESPONSES, "anthropic": ANTHROPIC,
    "gemini": GEMINI, "ollama": OLLAMA,
    # Google's Code Assist (the Gemini CLI's API): Gemini bodies in a wrapper the family adds.
    "gemini-code-assist": GEMINI}


def wire_format(name: str) -> WireFormat:
    """The format of a format name or proto enum name; KeyError when unknown."""
    found = FORMATS.get(name) or _BY_PROTO_NAME.get(name)
    if found is None:
        raise KeyError(f"unknown format {name!r}")
    return found


def family_format(family: str) -> WireFormat | None:
    """The wire format an executor family speaks; None for a family with no chat API."""
    return FAMILY_FORMATS.get(family)


def module_for(name: str) -> ModuleType:
    """The translator module of a format name or proto enum name; KeyError when unknown."""
    return wire_format(name).module

"""A subscription type's request rules (catalog.yaml `request`): what the executor does to every
chat body and header for Claude Code and Codex, and a Codex answer collected from its stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from omniroute import catalog
from omniroute.catalog import RequestRules
from omniroute.v1 import common_pb2
from omniroute_executor import upstream
from omniroute_executor.families import FAMILIES, type_rules
from omniroute_executor.families.base import add_caller_headers
from omniroute_executor.provider_body import ProviderBody
from omniroute_executor.relay import relay_collected

IDENTITY = "You are Claude Code, Anthropic's official CLI for Claude."
CLAUDE = RequestRules(system_prefix=IDENTITY)


@pytest.mark.parametrize(("system", "expected"), [
    (None, [{"type": "text", "text": IDENTITY}]),
    ("Be brief.", [{"type": "text", "text": IDENTITY}, {"type": "text", "text": "Be brief."}]),
    ([{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
     [{"type": "text", "text": IDENTITY},
      {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]),
    (f"{IDENTITY} Be brief.", f"{IDENTITY} Be brief."),  # already starts with it
    ([{"type": "text", "text": IDENTITY}], [{"type": "text", "text": IDENTITY}]),
])
def test_claude_code_system_prompt_starts_with_its_identity(system: Any, expected: Any) -> None:
    body: dict[str, Any] = {"model": "m", "messages": []}
    if system is not None:
        body["system"] = system
    type_rules.apply(CLAUDE, body)
    assert body["system"] == expected


def test_the_presets_say_what_their_apis_require() -> None:
    claude, codex = catalog.provider_type("claude-code"), catalog.provider_type("codex")
    assert claude is not None and claude.request.system_prefix == IDENTITY
    assert codex is not None and codex.request.stream and codex.request.fields == {"store": False}
    assert codex.request.instructions and "max_output_tokens" in codex.request.drop
    plain = catalog.provider_type("openai")
    assert plain is not None and plain.request == RequestRules()
    with pytest.raises(ValueError, match="unknown request rules"):
        catalog._entry("x", {"family": "openai", "request": {"sytem_prefix": "typo"}})


def test_codex_body() -> None:
    rules = catalog.provider_type("codex").request  # type: ignore[union-attr]
    body: dict[str, Any] = {"model": "gpt-5", "store": True, "max_output_tokens": 64, "input": [
        {"role": "system", "content": "Be brief."},
        {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "Answer in French."}]},
        {"role": "developer", "content": "kept"}, {"role": "user", "content": "hi"}]}
    type_rules.apply(rules, body)
    assert body["instructions"] == "Be brief.\n\nAnswer in French." and body["store"] is False
    assert "max_output_tokens" not in body
    assert [item["role"] for item in body["input"]] == ["developer", "user"]
    bare: dict[str, Any] = {"model": "gpt-5", "input": "hi"}
    type_rules.apply(rules, bare)
    assert bare["instructions"] == rules.instructions and bare["input"] == "hi"
    own: dict[str, Any] = {"model": "gpt-5", "instructions": "Mine.", "input": [{"role": "system", "content": "x"}]}
    type_rules.apply(rules, own)
    assert own["instructions"] == "Mine." and own["input"] == [{"role": "system", "content": "x"}]


def test_caller_beta_flags_join_the_preset_ones() -> None:
    headers = {"content-type": "application/json", "anthropic-beta": "oauth-2025-04-20"}
    add_caller_headers(headers, {"anthropic-beta": "context-management-2025-06-27, oauth-2025-04-20"},
                       ("anthropic-beta",))
    assert headers["anthropic-beta"] == "oauth-2025-04-20,context-management-2025-06-27"
    # A connection's header in another case is the same header.
    mixed = {"Anthropic-Beta": "oauth-2025-04-20"}
    add_caller_headers(mixed, {"anthropic-beta": "files-api-2025-04-14"}, ("anthropic-beta",))
    assert mixed == {"Anthropic-Beta": "oauth-2025-04-20,files-api-2025-04-14"}
    alone: dict[str, str] = {}
    add_caller_headers(alone, {"anthropic-beta": "files-api-2025-04-14"}, ("anthropic-beta",))
    add_caller_headers(alone, {}, ("anthropic-beta",))
    assert alone == {"anthropic-beta": "files-api-2025-04-14"}


def _sse(*events: dict[str, Any]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: ".encode() + orjson.dumps(e) + b"\n\n" for e in events)


def _answer(raw: bytes) -> upstream.UpstreamAnswer:
    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 50):  # in pieces, as a network would
            yield raw[start:start + 50]

    async def read() -> bytes:
        return raw

    async def close() -> None:
        return None

    return upstream.UpstreamAnswer(200, [], pieces, read, close)


MESSAGE = {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
           "content": [{"type": "output_text", "text": "Bonjour", "annotations": []}]}
USAGE = {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}


def _collect(raw: bytes, passthrough: bool = False) -> list[common_pb2.AnswerEvent]:
    family = FAMILIES["openai-responses"]
    sent = ProviderBody({}, passthrough=passthrough, out_format=family.native_format if passthrough
                        else common_pb2.OPENAI_CHAT, caller_wants_usage=True)

    async def run() -> list[common_pb2.AnswerEvent]:
        return [event async for event in relay_collected(family, _answer(raw), sent, 5.0)]
    return asyncio.run(run())


@pytest.mark.parametrize("completed_output", [[MESSAGE], []])
def test_a_stream_is_collected_into_one_answer(completed_output: list[Any]) -> None:
    """The final event's response, or the streamed items when it came without output."""
    raw = _sse({"type": "response.created", "response": {"id": "resp_1", "output": []}},
               {"type": "response.output_text.delta", "output_index": 0, "delta": "Bonjour"},
               {"type": "response.output_item.done", "output_index": 0, "item": MESSAGE},
               {"type": "response.completed", "response": {"id": "resp_1", "model": "gpt-5", "status": "completed",
                                                           "output": completed_output, "usage": USAGE}})
    events = _collect(raw)
    assert [e.WhichOneof("kind") for e in events] == ["response", "usage"]
    whole = orjson.loads(events[0].response)
    assert whole["choices"][0]["message"]["content"] == "Bonjour"
    assert events[1].usage.input_tokens == 5 and events[1].usage.output_tokens == 2
    native = orjson.loads(_collect(raw, passthrough=True)[0].response)
    assert native["id"] == "resp_1" and native["output"] == [MESSAGE]


def test_a_collected_stream_that_fails_or_stops_is_an_error() -> None:
    failed = _sse({"type": "response.created", "response": {"id": "r", "output": []}},
                  {"type": "response.failed", "response": {"id": "r", "status": "failed",
                                                           "error": {"code": "server_error", "message": "boom"}}})
    stopped = _sse({"type": "response.created", "response": {"id": "r", "output": []}},
                   {"type": "response.output_text.delta", "output_index": 0, "delta": "Bon"})
    for raw in (failed, stopped):
        events = _collect(raw)
        assert [e.WhichOneof("kind") for e in events] == ["error"], events

"""OpenAI chat completions (the canonical format): validation, extension stripping, streams."""

from __future__ import annotations

from typing import Any

import pytest
from formats_fixtures import canonical_request, canonical_response

from omniroute.formats import canonical as c
from omniroute.formats import openai_chat as oc
from omniroute.formats import registry
from omniroute.formats.errors import FormatError, UpstreamStreamError

chat_types = pytest.importorskip("openai.types.chat")


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "m", "messages": []}, "messages"),
    ({"model": "m", "messages": [{"content": "x"}]}, "messages[0]"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"},
     "temperature"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1.5},
     "max_tokens"),
])
def test_validation(body: dict[str, Any], param: str) -> None:
    with pytest.raises(FormatError) as info:
        oc.request_to_canonical(body)
    assert info.value.param == param and info.value.status == 400


def test_request_passes_through_with_overrides() -> None:
    body = canonical_request()
    out = oc.request_to_canonical(body, model="alias", stream=True)
    assert out["model"] == "alias" and out["stream"] is True and body["model"] == "m"
    assert out["messages"] == body["messages"]


def test_canonical_to_request_strips_extensions_and_asks_for_usage() -> None:
    canonical = canonical_request() | {"stream": True, "x_omniroute": {"top_k": 3}}
    canonical["messages"][2]["x_omniroute"] = {"reasoning_signature": "s"}
    body = oc.canonical_to_request(canonical, "gpt-x")
    assert "x_omniroute" not in body and "x_omniroute" not in body["messages"][2]
    assert body["stream_options"] == {"include_usage": True} and body["model"] == "gpt-x"


def test_response_normalizes_reasoning_field_and_sdk_parses() -> None:
    upstream = canonical_response()
    upstream["choices"][0]["message"]["reasoning"] = upstream["choices"][0]["message"].pop(
        "reasoning_content")
    out = oc.response_to_canonical(upstream)
    assert out["choices"][0]["message"]["reasoning_content"] == "Compare 18 and 24."
    client = oc.canonical_to_response(out)
    assert "x_omniroute" not in client["choices"][0]["message"]
    parsed = chat_types.ChatCompletion.model_validate(client)
    assert parsed.usage and parsed.usage.prompt_tokens_details
    assert parsed.usage.prompt_tokens_details.cached_tokens == 100


def test_stream_decoder_holds_usage_to_the_end() -> None:
    decoder = oc.StreamDecoder()
    first = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": {"role": "assistant", "reasoning": "r"}}]}
    last = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
    chunks = decoder.feed("", first) + decoder.feed("", last) + decoder.finish()
    assert chunks[0]["choices"][0]["delta"]["reasoning_content"] == "r"
    assert "usage" not in chunks[1]
    assert chunks[2]["choices"] == [] and chunks[2]["usage"]["total_tokens"] == 5
    with pytest.raises(UpstreamStreamError):
        decoder.feed("", {"error": {"message": "boom", "type": "server_error"}})


@pytest.mark.parametrize("include_usage", [True, False])
def test_stream_encoder(include_usage: bool) -> None:
    encoder = oc.StreamEncoder(model="alias", request_id="abc", include_usage=include_usage)
    events = [e for ch in c.response_to_chunks(canonical_response()) for e in encoder.encode(ch)]
    events += encoder.finish()
    parsed = [chat_types.ChatCompletionChunk.model_validate(d) for _, d in events]
    assert {p.id for p in parsed} == {"chatcmpl-abc"} and {p.model for p in parsed} == {"alias"}
    assert any(p.usage for p in parsed) is include_usage
    if include_usage:
        assert parsed[-1].choices == [] and parsed[-1].usage and parsed[-1].usage.total_tokens == 160
    assert all("x_omniroute" not in str(d) for _, d in events)
    assert oc.STREAM_TERMINATOR == b"data: [DONE]\n\n"


def test_stream_encoder_finish_adds_finish_reason_when_missing() -> None:
    encoder = oc.StreamEncoder(model="m", request_id="r")
    events = encoder.encode(c.ChunkBuilder().text("x")) + encoder.finish()
    assert events[-1][1]["choices"][0]["finish_reason"] == "stop"
    assert encoder.finish() == []
    [(_name, data)] = encoder.error(502, "upstream died", "server_error")
    assert data == {"error": {"message": "upstream died", "type": "server_error", "param": None,
                              "code": None}}


def test_parse_error() -> None:
    assert oc.parse_error(401, b'{"error":{"message":"bad key","type":"invalid_request_error"}}') == (
        "invalid_request_error", "bad key")
    assert oc.parse_error(503, b"Service Unavailable") == ("server_error", "Service Unavailable")
    assert oc.parse_error(429, b"null") == ("rate_limit_error", "null")


def test_registry_has_the_same_interface_everywhere() -> None:
    names = ["request_to_canonical", "canonical_to_request", "response_to_canonical",
             "canonical_to_response", "StreamDecoder", "StreamEncoder", "error_body",
             "parse_error", "STREAM_TERMINATOR"]
    for name, module in registry.MODULES.items():
        assert module.FORMAT == name
        assert all(hasattr(module, attr) for attr in names), name
        assert registry.module_for(registry.PROTO_NAMES[name]) is module
    assert registry.PROTO_NAMES["openai_responses"] == "OPENAI_RESPONSES"
    with pytest.raises(KeyError):
        registry.module_for("cohere")


@pytest.mark.parametrize("fmt", sorted(registry.MODULES))
def test_every_format_rejects_non_object_bodies(fmt: str) -> None:
    with pytest.raises(FormatError):
        registry.module_for(fmt).request_to_canonical([1, 2], model="m")

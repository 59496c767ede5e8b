"""Anthropic Messages ↔ canonical: requests, answers, streams and errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from formats_fixtures import PNG_B64, WEATHER_SCHEMA, canonical_request, canonical_response
from pydantic import TypeAdapter

from omniroute.formats import anthropic as a
from omniroute.formats import canonical as c
from omniroute.formats.errors import FormatError, UpstreamStreamError

anthropic_types = pytest.importorskip("anthropic.types")


# --- requests --------------------------------------------------------------------------------

def anthropic_request() -> dict[str, Any]:
    return {
        "model": "claude-x",
        "max_tokens": 2048,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": PNG_B64}},
                {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Need weather.", "signature": "SIG"},
                {"type": "redacted_thinking", "data": "REDACTED"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                 "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather",
                 "input": {"city": "Rome"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True,
                 "content": "unavailable"},
                {"type": "text", "text": "And now?"},
            ]},
        ],
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER_SCHEMA}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "thinking": {"type": "enabled", "budget_tokens": 1500},
        "top_p": 0.97,
        "stop_sequences": ["STOP"],
        "metadata": {"user_id": "u-1"},
        "stream": True,
    }


def test_request_to_canonical_keeps_every_field() -> None:
    out = a.request_to_canonical(anthropic_request())
    msgs = out["messages"]
    assert msgs[0] == {"role": "system", "content": [
        {"type": "text", "text": "Be brief.", "x_omniroute": {"cache_control": {"type": "ephemeral"}}}]}
    assert msgs[1]["content"][1]["image_url"]["url"] == f"data:image/png;base64,{PNG_B64}"
    assert msgs[1]["content"][2]["image_url"]["url"] == "https://x.test/a.png"
    assistant = msgs[2]
    assert assistant["reasoning_content"] == "Need weather."
    assert assistant["x_omniroute"] == {"reasoning_signature": "SIG", "redacted_reasoning": ["REDACTED"]}
    assert [t["id"] for t in assistant["tool_calls"]] == ["toolu_1", "toolu_2"]
    assert json.loads(assistant["tool_calls"][1]["function"]["arguments"]) == {"city": "Rome"}
    # tool results become tool messages, in order, before the user's text
    assert msgs[3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"}
    assert msgs[4]["tool_call_id"] == "toolu_2" and msgs[4]["content"] == "unavailable"
    assert msgs[4]["x_omniroute"] == {"is_error": True}
    assert msgs[5] == {"role": "user", "content": [{"type": "text", "text": "And now?"}]}
    assert out["tool_choice"] == "auto" and out["parallel_tool_calls"] is False
    assert out["tools"][0]["function"]["parameters"] == WEATHER_SCHEMA
    assert out["reasoning_effort"] == "low" and out["x_omniroute"]["thinking_budget"] == 1500
    assert out["max_tokens"] == 2048 and out["top_p"] == 0.97 and out["stop"] == ["STOP"]
    assert out["user"] == "u-1" and out["stream"] is True


def test_anthropic_round_trip_is_lossless() -> None:
    body = anthropic_request()
    back = a.canonical_to_request(a.request_to_canonical(body), "claude-x")
    assert back == body


@pytest.mark.parametrize(("bad", "param"), [
    ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
    ({"model": "m", "messages": []}, "messages"),
    # Nothing to answer: only a system message, or a turn whose only block is not portable.
    ({"model": "m", "messages": [{"role": "system", "content": "x"}]}, "messages"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "audio"}]}]}, "messages"),
    ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages.0"),
    ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages.0"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"text": "no type"}]}]}, "messages.0"),
])
def test_bad_requests_raise_format_error(bad: dict[str, Any], param: str) -> None:
    with pytest.raises(FormatError) as info:
        a.request_to_canonical(bad)
    assert info.value.status == 400 and info.value.param == param


def test_canonical_to_request_shapes_for_anthropic() -> None:
    canonical = canonical_request()
    canonical["messages"].insert(1, {"role": "developer", "content": "No emojis."})
    canonical.pop("max_tokens")
    canonical["temperature"] = 1.7
    body = a.canonical_to_request(canonical, "claude-x")
    assert body["system"] == "You are terse.\n\nNo emojis."
    assert body["max_tokens"] == a.DEFAULT_MAX_TOKENS
    assert body["temperature"] == 1.0  # clamped to Anthropic's range
    assert body["stop_sequences"] == ["END"]
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "user"]  # alternating after merging
    image, url_image = body["messages"][0]["content"][1:]
    assert image["source"] == {"type": "base64", "media_type": "image/png", "data": PNG_B64}
    assert url_image["source"] == {"type": "url", "url": "https://example.com/cat.jpg"}
    uses = body["messages"][1]["content"]
    assert [(b["type"], b["id"], b["input"]) for b in uses] == [
        ("tool_use", "call_1", {"city": "Paris"}), ("tool_use", "call_2", {"city": "Rome"})]
    merged = body["messages"][2]["content"]
    assert [b["type"] for b in merged] == ["tool_result", "tool_result", "text"]
    assert [b.get("tool_use_id") for b in merged[:2]] == ["call_1", "call_2"]
    assert body["tools"] == [{"name": "get_weather", "description": "Weather for a city",
                              "input_schema": WEATHER_SCHEMA}]
    assert body["tool_choice"] == {"type": "auto"}


def test_reasoning_effort_becomes_thinking_and_relaxes_incompatible_params() -> None:
    canonical = canonical_request()
    canonical.update(reasoning_effort="medium", max_tokens=None, tool_choice="required")
    canonical["x_omniroute"] = {"top_k": 5}
    body = a.canonical_to_request(canonical, "claude-x")
    budget = c.EFFORT_BUDGETS["medium"]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] > budget
    assert "temperature" not in body and "top_k" not in body and "top_p" not in body
    assert body["tool_choice"] == {"type": "auto"}


def test_thinking_budget_must_fit_under_max_tokens() -> None:
    canonical = {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                 "reasoning_effort": "high", "max_tokens": 3000}
    assert a.canonical_to_request(canonical, "x")["thinking"]["budget_tokens"] == 2999
    canonical["max_tokens"] = 500
    assert "thinking" not in a.canonical_to_request(canonical, "x")
    canonical["reasoning_effort"] = "none"
    assert "thinking" not in a.canonical_to_request(canonical, "x")


def test_unsigned_reasoning_is_not_replayed_upstream() -> None:
    canonical = {"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo", "reasoning_content": "from gemini"}]}
    body = a.canonical_to_request(canonical, "x")
    assert body["messages"][1]["content"] == [{"type": "text", "text": "yo"}]


@pytest.mark.parametrize("fmt", [
    {"type": "json_object"},
    {"type": "json_schema", "json_schema": {"name": "w", "schema": WEATHER_SCHEMA}},
])
def test_structured_output_is_a_forced_tool(fmt: dict[str, Any]) -> None:
    canonical = {"model": "m", "messages": [{"role": "user", "content": "json"}],
                 "response_format": fmt}
    body = a.canonical_to_request(canonical, "x")
    assert body["tool_choice"] == {"type": "tool", "name": c.JSON_TOOL_NAME}
    schema = body["tools"][0]["input_schema"]
    assert schema == (WEATHER_SCHEMA if fmt["type"] == "json_schema" else {"type": "object"})


def test_structured_output_with_user_tools_requires_any_tool() -> None:
    canonical = canonical_request()
    canonical["response_format"] = {"type": "json_object"}
    body = a.canonical_to_request(canonical, "x")
    assert body["tool_choice"] == {"type": "any"}
    assert [t["name"] for t in body["tools"]] == ["get_weather", c.JSON_TOOL_NAME]


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", {"type": "auto"}), ("none", {"type": "none"}), ("required", {"type": "any"}),
    ({"type": "function", "function": {"name": "get_weather"}},
     {"type": "tool", "name": "get_weather"}),
])
def test_tool_choice_both_ways(choice: Any, expected: dict[str, Any]) -> None:
    canonical = canonical_request()
    canonical["tool_choice"] = choice
    body = a.canonical_to_request(canonical, "x")
    assert body["tool_choice"] == expected
    assert a.request_to_canonical(body)["tool_choice"] == choice


def test_tool_result_blocks_become_text_or_parts() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "a"},
                                                                 {"type": "text", "text": "b"}]},
        {"type": "tool_result", "tool_use_id": "t2", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": PNG_B64}}]}]}]}
    msgs = a.request_to_canonical(body)["messages"]
    assert msgs[0]["content"] == "ab"
    assert msgs[1]["content"][0]["type"] == "image_url"
    back = a.canonical_to_request({"model": "m", "messages": msgs}, "m")
    assert back["messages"][0]["content"][1]["content"][0]["source"]["data"] == PNG_B64


def test_request_output_config_format_and_adaptive_thinking() -> None:
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}],
            "thinking": {"type": "adaptive"}, "output_config": {"effort": "max",
                                                                 "format": {"type": "json_schema",
                                                                            "schema": WEATHER_SCHEMA}}}
    out = a.request_to_canonical(body)
    assert out["reasoning_effort"] == "high"
    assert out["response_format"]["json_schema"]["schema"] == WEATHER_SCHEMA


# --- answers ---------------------------------------------------------------------------------

def anthropic_message() -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "thinking", "thinking": "Hmm.", "signature": "S1"},
                        {"type": "text", "text": "Calling."},
                        {"type": "tool_use", "id": "toolu_9", "name": "f", "input": {"a": 1}}],
            "stop_reason": "tool_use", "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 100,
                      "cache_creation_input_tokens": 5}}


def test_response_to_canonical() -> None:
    out = a.response_to_canonical(anthropic_message())
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Calling."
    assert choice["message"]["reasoning_content"] == "Hmm."
    assert choice["message"]["x_omniroute"]["reasoning_signature"] == "S1"
    assert choice["message"]["tool_calls"][0]["id"] == "toolu_9"
    assert out["usage"]["prompt_tokens"] == 115
    assert out["usage"]["prompt_tokens_details"] == {"cached_tokens": 100, "cache_creation_tokens": 5}
    assert out["usage"]["completion_tokens"] == 20


def test_response_round_trip_and_sdk_parses() -> None:
    original = anthropic_message()
    back = a.canonical_to_response(a.response_to_canonical(original))
    assert back["content"] == original["content"]
    assert back["usage"] == original["usage"] and back["stop_reason"] == "tool_use"
    anthropic_types.Message.model_validate(back)


def test_canonical_response_to_anthropic_parses_in_sdk() -> None:
    out = a.canonical_to_response(canonical_response())
    message = anthropic_types.Message.model_validate(out)
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert message.stop_reason == "tool_use"
    assert message.usage.input_tokens == 20 and message.usage.cache_read_input_tokens == 100


@pytest.mark.parametrize(("native", "canonical"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("tool_use", "tool_calls"), ("refusal", "content_filter"),
    ("model_context_window_exceeded", "length"),
])
def test_stop_reasons(native: str, canonical: str) -> None:
    body = anthropic_message() | {"stop_reason": native}
    assert a.response_to_canonical(body)["choices"][0]["finish_reason"] == canonical


def test_json_tool_answer_becomes_text() -> None:
    body = anthropic_message() | {"content": [
        {"type": "tool_use", "id": "t", "name": c.JSON_TOOL_NAME, "input": {"city": "Oslo"}}]}
    choice = a.response_to_canonical(body)["choices"][0]
    assert json.loads(choice["message"]["content"]) == {"city": "Oslo"}
    assert "tool_calls" not in choice["message"] and choice["finish_reason"] == "stop"


# --- streams ---------------------------------------------------------------------------------

def anthropic_stream() -> list[tuple[str, dict[str, Any]]]:
    """As the API sends it: thinking with signature, text, then two parallel tool calls."""
    return [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_s", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 50, "output_tokens": 1, "cache_read_input_tokens": 7,
                      "cache_creation_input_tokens": 0}}}),
        ("ping", {"type": "ping"}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "thinking_delta", "thinking": "Let me "}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "thinking_delta", "thinking": "think."}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "signature_delta", "signature": "SIG=="}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "text_delta", "text": "Checking "}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "text_delta", "text": "both."}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("content_block_start", {"type": "content_block_start", "index": 2, "content_block": {
            "type": "tool_use", "id": "toolu_A", "name": "get_weather", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 2,
                                 "delta": {"type": "input_json_delta", "partial_json": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 2,
                                 "delta": {"type": "input_json_delta", "partial_json": '{"city":'}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 2,
                                 "delta": {"type": "input_json_delta", "partial_json": ' "Paris"}'}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 2}),
        ("content_block_start", {"type": "content_block_start", "index": 3, "content_block": {
            "type": "tool_use", "id": "toolu_B", "name": "get_weather", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 3,
                                 "delta": {"type": "input_json_delta", "partial_json": '{"city": "Rome"}'}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 3}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                           "usage": {"output_tokens": 89}}),
        ("message_stop", {"type": "message_stop"}),
    ]


def decode(events: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    decoder = a.StreamDecoder()
    chunks = [chunk for event, data in events for chunk in decoder.feed(event, data)]
    return chunks + decoder.finish()


def test_stream_decoder_emits_incremental_canonical_chunks() -> None:
    chunks = decode(anthropic_stream())
    arg_deltas = [call["function"]["arguments"] for ch in chunks for choice in ch["choices"]
                  for call in choice["delta"].get("tool_calls", []) if call["index"] == 0]
    assert arg_deltas == ["", '{"city":', ' "Paris"}']  # streamed, not buffered
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 57
    assert chunks[-1]["usage"]["completion_tokens"] == 89
    acc = c.StreamAccumulator()
    for chunk in chunks:
        acc.add(chunk)
    out = acc.result()
    message = out["choices"][0]["message"]
    assert out["id"] == "msg_s" and out["choices"][0]["finish_reason"] == "tool_calls"
    assert message["reasoning_content"] == "Let me think."
    assert message["x_omniroute"]["reasoning_signature"] == "SIG=="
    assert message["content"] == "Checking both."
    assert [(t["id"], json.loads(t["function"]["arguments"])) for t in message["tool_calls"]] == [
        ("toolu_A", {"city": "Paris"}), ("toolu_B", {"city": "Rome"})]


def test_stream_decoder_json_tool_streams_as_text() -> None:
    events = [
        ("message_start", {"type": "message_start", "message": {"id": "m", "model": "x",
                                                                "usage": {"input_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
            "type": "tool_use", "id": "t", "name": c.JSON_TOOL_NAME, "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "input_json_delta", "partial_json": '{"a":'}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "input_json_delta", "partial_json": "1}"}}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                           "usage": {"output_tokens": 3}}),
    ]
    acc = c.StreamAccumulator()
    for chunk in decode(events):  # type: ignore[arg-type]
        acc.add(chunk)
    out = acc.result()["choices"][0]
    assert out["message"]["content"] == '{"a":1}' and out["finish_reason"] == "stop"


def test_stream_decoder_raises_on_error_event() -> None:
    decoder = a.StreamDecoder()
    with pytest.raises(UpstreamStreamError) as info:
        decoder.feed("error", {"type": "error", "error": {"type": "overloaded_error",
                                                          "message": "Overloaded"}})
    assert info.value.status == 529 and info.value.type == "overloaded_error"


def encode_all(chunks: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    encoder = a.StreamEncoder(model="claude-x", request_id="req1")
    events = [event for chunk in chunks for event in encoder.encode(chunk)]
    return events + encoder.finish()


def test_stream_encoder_exact_event_order_and_sdk_types() -> None:
    events = encode_all(c.response_to_chunks(canonical_response()))
    names = [name for name, _ in events]
    assert names == [
        "message_start", "ping",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop"]
    assert all(name == data["type"] for name, data in events)
    adapter: TypeAdapter[Any] = TypeAdapter(anthropic_types.RawMessageStreamEvent)
    for name, data in events:
        if name != "ping":
            adapter.validate_python(data)
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"] == {"input_tokens": 20, "output_tokens": 40,
                              "cache_read_input_tokens": 100, "cache_creation_input_tokens": 0}


def test_stream_encoder_output_accumulates_in_the_sdk() -> None:
    from anthropic.lib.streaming._messages import accumulate_event

    adapter: TypeAdapter[Any] = TypeAdapter(anthropic_types.RawMessageStreamEvent)
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for name, data in encode_all(c.response_to_chunks(canonical_response())):
        if name != "ping":
            snapshot = accumulate_event(event=adapter.validate_python(data),
                                        current_snapshot=snapshot, json_bufs=json_bufs)
    assert snapshot is not None
    assert snapshot.content[0].type == "thinking" and snapshot.content[0].signature == "sig-123"
    assert snapshot.content[1].type == "text" and snapshot.content[1].text == "Rome is warmer."
    tools = [b for b in snapshot.content if b.type == "tool_use"]
    assert [(t.id, t.input) for t in tools] == [("call_a", {"city": "Oslo"}),
                                               ("call_b", {"tz": "CET"})]
    assert snapshot.stop_reason == "tool_use" and snapshot.usage.output_tokens == 40


def test_stream_round_trip_anthropic_to_anthropic() -> None:
    events = encode_all(decode(anthropic_stream()))
    acc = c.StreamAccumulator()
    for chunk in decode(events):  # type: ignore[arg-type]
        acc.add(chunk)
    message = acc.result()["choices"][0]["message"]
    assert message["content"] == "Checking both."
    assert message["x_omniroute"]["reasoning_signature"] == "SIG=="
    assert len(message["tool_calls"]) == 2


def test_stream_encoder_finish_without_finish_reason_closes_cleanly() -> None:
    encoder = a.StreamEncoder(model="m", request_id="r")
    events = encoder.encode(c.ChunkBuilder().text("partial")) + encoder.finish()
    assert [n for n, _ in events] == ["message_start", "ping", "content_block_start",
                                      "content_block_delta", "content_block_stop",
                                      "message_delta", "message_stop"]
    assert encoder.finish() == []
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"


def test_stream_encoder_error_event() -> None:
    encoder = a.StreamEncoder(model="m", request_id="r")
    encoder.encode(c.ChunkBuilder().text("x"))
    [(name, data)] = encoder.error(529, "Overloaded", "overloaded_error")
    assert name == "error"
    assert data == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


# --- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "kind"), [
    (400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"),
    (404, "not_found_error"), (413, "request_too_large"), (429, "rate_limit_error"),
    (500, "api_error"), (529, "overloaded_error"), (502, "api_error")])
def test_error_body_types(status: int, kind: str) -> None:
    assert a.error_body(status, "boom") == {"type": "error",
                                            "error": {"type": kind, "message": "boom"}}


def test_error_body_maps_openai_type_names() -> None:
    assert a.error_body(500, "x", type_="server_error")["error"]["type"] == "api_error"


def test_parse_error_is_robust() -> None:
    body = b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}'
    assert a.parse_error(429, body) == ("rate_limit_error", "slow down")
    assert a.parse_error(502, b"<html>Bad gateway</html>") == ("api_error", "<html>Bad gateway</html>")
    assert a.parse_error(500, b"") == ("api_error", "upstream returned HTTP 500")
    assert a.parse_error(400, b'{"error": 3}')[0] == "invalid_request_error"

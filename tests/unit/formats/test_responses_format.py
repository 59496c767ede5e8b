"""OpenAI Responses ↔ canonical: requests, answers, typed stream events and errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from formats_fixtures import PNG_B64, WEATHER_SCHEMA, canonical_request, canonical_response
from pydantic import TypeAdapter

from omniroute.formats import canonical as c
from omniroute.formats import openai_responses as r
from omniroute.formats.errors import FormatError, UpstreamStreamError

responses_types = pytest.importorskip("openai.types.responses")


def responses_request() -> dict[str, Any]:
    return {
        "model": "gpt-x",
        "instructions": "Be brief.",
        "input": [
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "Weather?"},
                {"type": "input_image", "image_url": f"data:image/png;base64,{PNG_B64}",
                 "detail": "auto"}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather",
             "arguments": '{"city":"Paris"}'},
            {"type": "function_call", "call_id": "call_2", "name": "get_weather",
             "arguments": '{"city":"Rome"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
            {"type": "function_call_output", "call_id": "call_2", "output": "24C"},
        ],
        "store": False,
        "temperature": 0.4, "top_p": 0.9, "max_output_tokens": 256,
        "reasoning": {"effort": "high"},
        "tools": [{"type": "function", "name": "get_weather", "description": "W",
                   "parameters": WEATHER_SCHEMA, "strict": True}],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "text": {"format": {"type": "json_schema", "name": "w", "schema": WEATHER_SCHEMA,
                            "strict": True}},
        "stream": True,
    }


def test_request_to_canonical() -> None:
    out = r.request_to_canonical(responses_request())
    msgs = out["messages"]
    assert msgs[0] == {"role": "system", "content": "Be brief."}
    assert msgs[1]["content"][1]["image_url"]["url"].endswith(PNG_B64)
    assert [t["id"] for t in msgs[2]["tool_calls"]] == ["call_1", "call_2"]  # one assistant turn
    assert [m["tool_call_id"] for m in msgs[3:]] == ["call_1", "call_2"]
    assert out["reasoning_effort"] == "high" and out["max_tokens"] == 256
    assert out["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert out["response_format"]["json_schema"]["schema"] == WEATHER_SCHEMA
    assert out["tools"][0]["function"]["strict"] is True


def test_round_trip() -> None:
    body = responses_request()
    assert r.canonical_to_request(r.request_to_canonical(body), "gpt-x") == body


def test_string_input_and_errors() -> None:
    out = r.request_to_canonical({"model": "m", "input": "hi"})
    assert out["messages"] == [{"role": "user", "content": "hi"}]
    with pytest.raises(FormatError) as info:
        r.request_to_canonical({"model": "m", "input": "x", "previous_response_id": "resp_1"})
    assert info.value.param == "previous_response_id"
    with pytest.raises(FormatError):
        r.request_to_canonical({"input": "x"})
    with pytest.raises(FormatError):
        r.request_to_canonical({"model": "m"})
    with pytest.raises(FormatError):
        r.request_to_canonical({"model": "m", "input": [{"type": "bogus"}]})


def test_canonical_to_request_from_chat() -> None:
    body = r.canonical_to_request(canonical_request(), "gpt-x")
    assert body["instructions"] == "You are terse."
    types = [item["type"] for item in body["input"]]
    assert types == ["message", "function_call", "function_call", "function_call_output",
                     "function_call_output", "message"]
    assert body["input"][0]["content"][2] == {"type": "input_image", "detail": "auto",
                                              "image_url": "https://example.com/cat.jpg"}
    assert body["max_output_tokens"] == 300 and body["tool_choice"] == "auto"
    assert body["tools"][0] == {"type": "function", "name": "get_weather",
                                "description": "Weather for a city", "parameters": WEATHER_SCHEMA}


def test_response_both_ways_and_sdk() -> None:
    out = r.canonical_to_response(canonical_response())
    parsed = responses_types.Response.model_validate(out)
    assert parsed.output_text == "Rome is warmer."
    assert [o.type for o in parsed.output] == ["reasoning", "message", "function_call",
                                               "function_call"]
    assert parsed.usage and parsed.usage.input_tokens_details.cached_tokens == 100
    assert parsed.usage.output_tokens_details.reasoning_tokens == 12
    back = r.response_to_canonical(out)
    msg = back["choices"][0]["message"]
    assert msg["content"] == "Rome is warmer." and msg["reasoning_content"] == "Compare 18 and 24."
    assert [t["id"] for t in msg["tool_calls"]] == ["call_a", "call_b"]
    assert back["choices"][0]["finish_reason"] == "tool_calls"
    assert back["usage"] == canonical_response()["usage"]


def test_incomplete_maps_to_length() -> None:
    body = canonical_response(reasoning=False)
    body["choices"][0]["finish_reason"] = "length"
    body["choices"][0]["message"].pop("tool_calls")
    out = r.canonical_to_response(body)
    assert out["status"] == "incomplete"
    assert out["incomplete_details"] == {"reason": "max_output_tokens"}
    assert r.response_to_canonical(out)["choices"][0]["finish_reason"] == "length"


def encode_all(chunks: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    encoder = r.StreamEncoder(model="gpt-x", request_id="abc")
    return [e for ch in chunks for e in encoder.encode(ch)] + encoder.finish()


def test_stream_encoder_event_order_and_sdk_types() -> None:
    events = encode_all(c.response_to_chunks(canonical_response()))
    names = [n for n, _ in events]
    assert names == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta", "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed"]
    assert [d["sequence_number"] for _, d in events] == list(range(len(events)))
    adapter: TypeAdapter[Any] = TypeAdapter(responses_types.ResponseStreamEvent)
    for name, data in events:
        assert adapter.validate_python(data).type == name
    final = responses_types.Response.model_validate(events[-1][1]["response"])
    assert final.output_text == "Rome is warmer." and final.usage and final.usage.total_tokens == 160


def test_stream_decoder_round_trip() -> None:
    decoder = r.StreamDecoder()
    chunks = [ch for n, d in encode_all(c.response_to_chunks(canonical_response()))
              for ch in decoder.feed(n, d)] + decoder.finish()
    acc = c.StreamAccumulator()
    for chunk in chunks:
        acc.add(chunk)
    out = acc.result()
    msg = out["choices"][0]["message"]
    assert msg["content"] == "Rome is warmer." and msg["reasoning_content"] == "Compare 18 and 24."
    assert [(t["id"], json.loads(t["function"]["arguments"])) for t in msg["tool_calls"]] == [
        ("call_a", {"city": "Oslo"}), ("call_b", {"tz": "CET"})]
    assert out["usage"] == canonical_response()["usage"]


def test_stream_decoder_incremental_args_from_upstream_fixture() -> None:
    decoder = r.StreamDecoder()
    events = [
        ("response.created", {"type": "response.created", "sequence_number": 0,
                              "response": {"id": "resp_1", "model": "gpt-x"}}),
        ("response.output_item.added", {"type": "response.output_item.added", "output_index": 0,
                                        "item": {"type": "function_call", "id": "fc_1",
                                                 "call_id": "call_9", "name": "f", "arguments": ""}}),
        ("response.function_call_arguments.delta", {"type": "response.function_call_arguments.delta",
                                                    "output_index": 0, "item_id": "fc_1", "delta": '{"a"'}),
        ("response.function_call_arguments.delta", {"type": "response.function_call_arguments.delta",
                                                    "output_index": 0, "item_id": "fc_1", "delta": ":1}"}),
        ("response.completed", {"type": "response.completed", "response": {
            "id": "resp_1", "status": "completed",
            "usage": {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}}}),
    ]
    chunks = [ch for n, d in events for ch in decoder.feed(n, d)] + decoder.finish()  # type: ignore[arg-type]
    args = [call["function"]["arguments"] for ch in chunks for choice in ch["choices"]
            for call in choice["delta"].get("tool_calls", [])]
    assert args == ["", '{"a"', ":1}"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["total_tokens"] == 8


def test_stream_errors() -> None:
    with pytest.raises(UpstreamStreamError):
        r.StreamDecoder().feed("error", {"type": "error", "code": "server_error", "message": "x"})
    encoder = r.StreamEncoder(model="m", request_id="r")
    events = encoder.encode(c.ChunkBuilder().text("hi")) + encoder.error(500, "boom", "server_error")
    name, data = events[-1]
    assert name == "error" and data["message"] == "boom"
    TypeAdapter(responses_types.ResponseStreamEvent).validate_python(data)
    assert encoder.finish() == []


def test_finish_without_finish_reason_completes() -> None:
    encoder = r.StreamEncoder(model="m", request_id="r")
    events = encoder.encode(c.ChunkBuilder().text("hi")) + encoder.finish()
    assert events[-1][0] == "response.completed"
    assert events[-1][1]["response"]["output"][0]["content"][0]["text"] == "hi"


def test_error_body() -> None:
    assert r.error_body(429, "slow")["error"]["type"] == "rate_limit_error"

"""Ollama /api/chat ↔ canonical: requests, answers, NDJSON streams and errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from formats_fixtures import PNG_B64, WEATHER_SCHEMA, canonical_request, canonical_response

from omniroute.formats import canonical as c
from omniroute.formats import ollama as o
from omniroute.formats.errors import FormatError, UpstreamStreamError

ollama = pytest.importorskip("ollama")


def ollama_request() -> dict[str, Any]:
    return {
        "model": "llama3",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is this?", "images": [PNG_B64]},
            {"role": "assistant", "content": "", "thinking": "Use tools.",
             "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                            {"function": {"name": "get_time", "arguments": {"tz": "CET"}}}]},
            {"role": "tool", "content": "10:00", "tool_name": "get_time"},
            {"role": "tool", "content": "18C", "tool_name": "get_weather"},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "W",
                                                    "parameters": WEATHER_SCHEMA}}],
        "format": WEATHER_SCHEMA,
        "options": {"temperature": 0.2, "top_p": 0.5, "top_k": 40, "num_predict": 99,
                    "stop": ["END"], "seed": 3},
        "think": True,
        "stream": False,
    }


def test_request_to_canonical() -> None:
    out = o.request_to_canonical(ollama_request())
    msgs = out["messages"]
    assert msgs[1]["content"][1]["image_url"]["url"] == f"data:image/png;base64,{PNG_B64}"
    calls = msgs[2]["tool_calls"]
    assert msgs[2]["reasoning_content"] == "Use tools."
    # results matched to calls by tool name, whatever their order
    assert msgs[3]["tool_call_id"] == calls[1]["id"] and msgs[4]["tool_call_id"] == calls[0]["id"]
    assert out["response_format"]["json_schema"]["schema"] == WEATHER_SCHEMA
    assert (out["temperature"], out["top_p"], out["max_tokens"], out["stop"], out["seed"]) == (
        0.2, 0.5, 99, ["END"], 3)
    assert out["x_omniroute"]["top_k"] == 40 and out["reasoning_effort"] == "medium"
    assert out["stream"] is False


def test_stream_defaults_to_true() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    assert o.request_to_canonical(body)["stream"] is True


def test_round_trip() -> None:
    body = ollama_request()
    back = o.canonical_to_request(o.request_to_canonical(body), "llama3")
    assert back == body


def test_bad_requests() -> None:
    with pytest.raises(FormatError):
        o.request_to_canonical({"messages": []})
    with pytest.raises(FormatError):
        o.request_to_canonical({"model": "m", "messages": [3]})


def test_canonical_to_request() -> None:
    canonical = canonical_request() | {"response_format": {"type": "json_object"},
                                       "reasoning_effort": "none"}
    body = o.canonical_to_request(canonical, "llama3")
    assert body["messages"][1]["images"] == [PNG_B64]  # URL image dropped, base64 kept
    assert body["messages"][2]["tool_calls"][1]["function"]["arguments"] == {"city": "Rome"}
    assert body["messages"][3] == {"role": "tool", "content": "18C sunny", "tool_name": "get_weather"}
    assert body["format"] == "json" and body["think"] is False and body["stream"] is False
    assert body["options"] == {"temperature": 0.5, "top_p": 0.9, "num_predict": 300, "stop": ["END"]}


def test_response_both_ways() -> None:
    native = {"model": "llama3", "created_at": "2025-01-01T00:00:00Z",
              "message": {"role": "assistant", "content": "", "thinking": "hmm",
                          "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
              "done": True, "done_reason": "stop", "prompt_eval_count": 11, "eval_count": 7}
    out = o.response_to_canonical(native)
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == '{"a":1}'
    assert out["usage"]["prompt_tokens"] == 11 and out["usage"]["completion_tokens"] == 7
    length = o.response_to_canonical(native | {"done_reason": "length",
                                               "message": {"role": "assistant", "content": "x"}})
    assert length["choices"][0]["finish_reason"] == "length"
    back = ollama.ChatResponse.model_validate(o.canonical_to_response(canonical_response()))
    assert back.message.content == "Rome is warmer." and back.message.thinking
    assert back.message.tool_calls and back.message.tool_calls[1].function.arguments == {"tz": "CET"}
    assert back.prompt_eval_count == 120 and back.eval_count == 40 and back.done


def ndjson_stream() -> list[dict[str, Any]]:
    base = {"model": "llama3", "created_at": "2025-01-01T00:00:00Z"}
    return [
        base | {"message": {"role": "assistant", "content": "", "thinking": "hm"}, "done": False},
        base | {"message": {"role": "assistant", "content": "Hel"}, "done": False},
        base | {"message": {"role": "assistant", "content": "lo"}, "done": False},
        base | {"message": {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "f", "arguments": {"a": 1}}},
            {"function": {"name": "g", "arguments": {}}}]}, "done": False},
        base | {"message": {"role": "assistant", "content": ""}, "done": True,
                "done_reason": "stop", "total_duration": 5, "prompt_eval_count": 9,
                "eval_count": 4},
    ]


def decode(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    decoder = o.StreamDecoder()
    return [ch for line in lines for ch in decoder.feed("", line)] + decoder.finish()


def test_stream_decoder() -> None:
    chunks = decode(ndjson_stream())
    acc = c.StreamAccumulator()
    for chunk in chunks:
        acc.add(chunk)
    out = acc.result()
    msg = out["choices"][0]["message"]
    assert msg["content"] == "Hello" and msg["reasoning_content"] == "hm"
    assert [t["function"]["name"] for t in msg["tool_calls"]] == ["f", "g"]
    assert len({t["id"] for t in msg["tool_calls"]}) == 2
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["total_tokens"] == 13


def test_stream_decoder_error() -> None:
    with pytest.raises(UpstreamStreamError):
        o.StreamDecoder().feed("", {"error": "model not found"})


def test_stream_encoder_lines_parse_in_sdk() -> None:
    encoder = o.StreamEncoder(model="llama3", request_id="r")
    events = [e for ch in c.response_to_chunks(canonical_response()) for e in encoder.encode(ch)]
    events += encoder.finish()
    parsed = [ollama.ChatResponse.model_validate(data) for _, data in events]
    assert [p.done for p in parsed] == [False, False, False, True]
    assert parsed[0].message.thinking == "Compare 18 and 24."
    assert parsed[1].message.content == "Rome is warmer."
    assert parsed[2].message.tool_calls and len(parsed[2].message.tool_calls) == 2
    assert parsed[-1].done_reason == "stop" and parsed[-1].eval_count == 40
    assert all(name == "" for name, _ in events)
    # every line survives JSON encoding (NDJSON)
    assert all("\n" not in json.dumps(data) for _, data in events)


def test_stream_encoder_finish_and_error() -> None:
    encoder = o.StreamEncoder(model="m", request_id="r")
    events = encoder.encode(c.ChunkBuilder().text("x")) + encoder.finish()
    assert events[-1][1]["done"] is True and encoder.finish() == []
    assert o.StreamEncoder(model="m", request_id="r").error(500, "boom", "x") == [("", {"error": "boom"})]


def test_errors() -> None:
    assert o.error_body(404, "model 'x' not found") == {"error": "model 'x' not found"}
    assert o.parse_error(404, b'{"error":"model not found"}') == ("not_found_error", "model not found")
    assert o.parse_error(500, b"oops")[1] == "oops"

"""Gemini generateContent ↔ canonical: requests, answers, streams and errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from formats_fixtures import PNG_B64, WEATHER_SCHEMA, canonical_request, canonical_response

from omniroute.formats import canonical as c
from omniroute.formats import gemini as g
from omniroute.formats.errors import FormatError, UpstreamStreamError

genai_types = pytest.importorskip("google.genai.types")


def gemini_request() -> dict[str, Any]:
    return {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {"role": "user", "parts": [
                {"text": "Weather here?"},
                {"inlineData": {"mimeType": "image/png", "data": PNG_B64}},
                {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://x.test/a.jpg"}}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                 "thoughtSignature": "GSIG"},
                {"functionCall": {"name": "get_time", "args": {"tz": "CET"}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"output": "18C"}}},
                {"functionResponse": {"name": "get_time", "response": {"output": "10:00"}}}]},
        ],
        "tools": [{"functionDeclarations": [
            {"name": "get_weather", "description": "Weather", "parametersJsonSchema": WEATHER_SCHEMA},
            {"name": "get_time", "description": "Time", "parametersJsonSchema": {"type": "object"}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY",
                                                 "allowedFunctionNames": ["get_weather"]}},
        "generationConfig": {"temperature": 0.3, "topP": 0.8, "topK": 20, "maxOutputTokens": 500,
                             "stopSequences": ["END"], "seed": 7,
                             "responseMimeType": "application/json",
                             "responseJsonSchema": WEATHER_SCHEMA,
                             "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": True}},
    }


def test_request_to_canonical() -> None:
    out = g.request_to_canonical(gemini_request(), model="models/gemini-x", stream=True)
    assert out["model"] == "gemini-x" and out["stream"] is True
    msgs = out["messages"]
    assert msgs[0] == {"role": "system", "content": "Be brief."}
    assert msgs[1]["content"][1]["image_url"]["url"] == f"data:image/png;base64,{PNG_B64}"
    assert msgs[1]["content"][2]["x_omniroute"] == {"mime_type": "image/jpeg"}
    calls = msgs[2]["tool_calls"]
    assert [json.loads(t["function"]["arguments"]) for t in calls] == [{"city": "Paris"}, {"tz": "CET"}]
    assert calls[0]["x_omniroute"] == {"thought_signature": "GSIG"}
    # synthesized ids are answered by the matching function responses
    assert [m["tool_call_id"] for m in msgs[3:5]] == [calls[0]["id"], calls[1]["id"]]
    assert msgs[3]["content"] == "18C"
    assert out["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert out["temperature"] == 0.3 and out["top_p"] == 0.8 and out["max_tokens"] == 500
    assert out["stop"] == ["END"] and out["seed"] == 7
    assert out["x_omniroute"] == {"top_k": 20, "thinking_budget": 2048, "include_thoughts": True}
    assert out["reasoning_effort"] == "low"
    assert out["response_format"]["json_schema"]["schema"] == WEATHER_SCHEMA


def test_gemini_round_trip_is_lossless() -> None:
    body = gemini_request()
    back = g.canonical_to_request(g.request_to_canonical(body, model="gemini-x"), "gemini-x")
    # the second call has no signature of its own: only the first call of a turn needs one
    assert back == body


def test_snake_case_input_is_accepted() -> None:
    body = {"system_instruction": {"parts": [{"text": "S"}]},
            "contents": [{"role": "user", "parts": [
                {"text": "hi"}, {"inline_data": {"mime_type": "image/png", "data": PNG_B64}}]}],
            "generation_config": {"max_output_tokens": 9, "stop_sequences": ["x"],
                                  "thinking_config": {"thinking_budget": 0}}}
    out = g.request_to_canonical(body, model="m")
    assert out["messages"][0]["content"] == "S"
    assert out["messages"][1]["content"][1]["image_url"]["url"].startswith("data:image/png")
    assert out["max_tokens"] == 9 and out["stop"] == ["x"] and out["reasoning_effort"] == "none"


@pytest.mark.parametrize(("body", "param"), [
    ({"contents": [{"role": "user", "parts": [{"text": "x"}]}]}, "model"),
    ({"contents": []}, "contents"),
    ({"contents": [{"role": "user"}]}, "contents[0]"),
    # Only a part no other provider can read: nothing left to answer.
    ({"contents": [{"role": "user", "parts": [{"executableCode": {}}]}]}, "contents"),
])
def test_bad_requests(body: dict[str, Any], param: str) -> None:
    model = None if param == "model" else "m"
    with pytest.raises(FormatError) as info:
        g.request_to_canonical(body, model=model)
    assert info.value.param == param


def test_canonical_to_request() -> None:
    canonical = canonical_request()
    canonical["reasoning_effort"] = "high"
    canonical["response_format"] = {"type": "json_object"}
    body = g.canonical_to_request(canonical, "gemini-x")
    assert body["systemInstruction"] == {"parts": [{"text": "You are terse."}]}
    assert [t["role"] for t in body["contents"]] == ["user", "model", "user"]
    user_parts = body["contents"][0]["parts"]
    assert user_parts[1] == {"inlineData": {"mimeType": "image/png", "data": PNG_B64}}
    assert user_parts[2] == {"fileData": {"mimeType": "image/jpeg",
                                          "fileUri": "https://example.com/cat.jpg"}}
    model_parts = body["contents"][1]["parts"]
    assert model_parts[0]["functionCall"] == {"name": "get_weather", "args": {"city": "Paris"}}
    assert model_parts[0]["thoughtSignature"] == g.SKIP_SIGNATURE
    # both tool results in the same user turn, then the user's question
    last = body["contents"][2]["parts"]
    assert last[0] == {"functionResponse": {"name": "get_weather", "response": {"output": "18C sunny"}}}
    assert last[1]["functionResponse"]["name"] == "get_weather"
    assert last[2] == {"text": "Thanks. Which is warmer?"}
    config = body["generationConfig"]
    assert config == {"temperature": 0.5, "topP": 0.9, "maxOutputTokens": 300,
                      "stopSequences": ["END"], "responseMimeType": "application/json",
                      "thinkingConfig": {"thinkingBudget": c.EFFORT_BUDGETS["high"],
                                         "includeThoughts": True}}
    assert body["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"] == WEATHER_SCHEMA
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}


@pytest.mark.parametrize(("choice", "config"), [
    ("auto", {"mode": "AUTO"}), ("none", {"mode": "NONE"}), ("required", {"mode": "ANY"}),
    ({"type": "function", "function": {"name": "get_weather"}},
     {"mode": "ANY", "allowedFunctionNames": ["get_weather"]})])
def test_tool_choice_both_ways(choice: Any, config: dict[str, Any]) -> None:
    canonical = canonical_request() | {"tool_choice": choice}
    body = g.canonical_to_request(canonical, "m")
    assert body["toolConfig"]["functionCallingConfig"] == config
    assert g.request_to_canonical(body, model="m")["tool_choice"] == choice


def test_json_tool_result_is_sent_as_object() -> None:
    canonical = {"model": "m", "messages": [
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                              "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 3}'}]}
    part = g.canonical_to_request(canonical, "m")["contents"][1]["parts"][0]
    assert part == {"functionResponse": {"name": "f", "response": {"temp": 3}}}


# --- answers ---------------------------------------------------------------------------------

def gemini_response() -> dict[str, Any]:
    return {"candidates": [{"content": {"role": "model", "parts": [
                {"text": "Let me see.", "thought": True},
                {"text": "It is "}, {"text": "sunny."},
                {"functionCall": {"name": "log", "args": {"n": 1}}, "thoughtSignature": "TS"}]},
             "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 30,
                              "cachedContentTokenCount": 60, "thoughtsTokenCount": 12,
                              "totalTokenCount": 142},
            "modelVersion": "gemini-x", "responseId": "resp-1"}


def test_response_to_canonical() -> None:
    out = g.response_to_canonical(gemini_response())
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "It is sunny."
    assert choice["message"]["reasoning_content"] == "Let me see."
    call = choice["message"]["tool_calls"][0]
    assert call["id"].startswith("call_") and call["x_omniroute"] == {"thought_signature": "TS"}
    assert call["id"] == g.response_to_canonical(gemini_response())["choices"][0]["message"][
        "tool_calls"][0]["id"]  # stable
    assert out["usage"]["prompt_tokens"] == 100 and out["usage"]["completion_tokens"] == 42
    assert out["usage"]["prompt_tokens_details"]["cached_tokens"] == 60
    assert out["usage"]["completion_tokens_details"]["reasoning_tokens"] == 12
    assert out["id"] == "resp-1" and out["model"] == "gemini-x"


@pytest.mark.parametrize(("native", "expected"), [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"),
    ("RECITATION", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("OTHER", "stop")])
def test_finish_reasons(native: str, expected: str) -> None:
    body = {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": native}]}
    assert g.response_to_canonical(body)["choices"][0]["finish_reason"] == expected


def test_blocked_prompt_is_content_filter() -> None:
    out = g.response_to_canonical({"promptFeedback": {"blockReason": "SAFETY"}})
    assert out["choices"][0]["finish_reason"] == "content_filter"


def test_canonical_to_response_parses_in_sdk() -> None:
    out = g.canonical_to_response(canonical_response())
    parsed = genai_types.GenerateContentResponse.model_validate(out)
    assert parsed.text == "Rome is warmer."
    assert [(f.id, f.name, f.args) for f in parsed.function_calls or []] == [
        ("call_a", "get_weather", {"city": "Oslo"}), ("call_b", "get_time", {"tz": "CET"})]
    usage = parsed.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.thoughts_token_count,
            usage.cached_content_token_count) == (120, 28, 12, 100)
    assert parsed.candidates and parsed.candidates[0].content
    assert parsed.candidates[0].content.parts[0].thought is True


def test_response_round_trip() -> None:
    back = g.canonical_to_response(g.response_to_canonical(gemini_response()))
    assert back["usageMetadata"] == gemini_response()["usageMetadata"] | {}
    parts = back["candidates"][0]["content"]["parts"]
    assert parts[0] == {"text": "Let me see.", "thought": True}
    assert parts[1] == {"text": "It is sunny."}
    assert parts[2]["functionCall"]["args"] == {"n": 1} and parts[2]["thoughtSignature"] == "TS"


# --- streams ---------------------------------------------------------------------------------

def gemini_stream() -> list[dict[str, Any]]:
    usage = {"promptTokenCount": 40, "totalTokenCount": 40}
    return [
        {"candidates": [{"content": {"role": "model", "parts": [
            {"text": "Thinking about it", "thought": True}]}, "index": 0}],
         "usageMetadata": usage, "modelVersion": "gemini-x", "responseId": "r1"},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Sure, "}]}, "index": 0}],
         "usageMetadata": usage, "modelVersion": "gemini-x", "responseId": "r1"},
        {"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "a", "args": {"x": 1}}},
            {"functionCall": {"name": "b", "args": {"y": 2}}}]},
            "finishReason": "STOP", "index": 0}],
         "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 15,
                           "thoughtsTokenCount": 5, "totalTokenCount": 60},
         "modelVersion": "gemini-x", "responseId": "r1"},
    ]


def decode(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    decoder = g.StreamDecoder()
    return [ch for frame in frames for ch in decoder.feed("", frame)] + decoder.finish()


def test_stream_decoder() -> None:
    chunks = decode(gemini_stream())
    acc = c.StreamAccumulator()
    for chunk in chunks:
        acc.add(chunk)
    out = acc.result()
    msg = out["choices"][0]["message"]
    assert msg["reasoning_content"] == "Thinking about it" and msg["content"] == "Sure, "
    assert [(t["function"]["name"], t["function"]["arguments"]) for t in msg["tool_calls"]] == [
        ("a", '{"x":1}'), ("b", '{"y":2}')]
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 20
    indexes = [call["index"] for ch in chunks for choice in ch["choices"]
               for call in choice["delta"].get("tool_calls", [])]
    assert indexes == [0, 1]


def test_stream_decoder_error_frame() -> None:
    with pytest.raises(UpstreamStreamError) as info:
        g.StreamDecoder().feed("", {"error": {"code": 429, "message": "quota",
                                              "status": "RESOURCE_EXHAUSTED"}})
    assert info.value.status == 429 and info.value.type == "RESOURCE_EXHAUSTED"


def encode_all(chunks: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    encoder = g.StreamEncoder(model="gemini-x", request_id="r9")
    return [e for ch in chunks for e in encoder.encode(ch)] + encoder.finish()


def test_stream_encoder_frames_parse_in_sdk() -> None:
    events = encode_all(c.response_to_chunks(canonical_response()))
    frames = [genai_types.GenerateContentResponse.model_validate(data) for _, data in events]
    assert all(name == "" for name, _ in events)
    assert frames[0].candidates and frames[0].candidates[0].content
    assert frames[0].candidates[0].content.parts[0].thought is True
    assert "".join(f.text or "" for f in frames[1:2]) == "Rome is warmer."
    last = frames[-1]
    assert last.candidates and last.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert [fc.name for fc in last.function_calls or []] == ["get_weather", "get_time"]
    assert last.usage_metadata and last.usage_metadata.total_token_count == 160
    assert all(f.usage_metadata is None for f in frames[:-1])


def test_stream_round_trip() -> None:
    acc = c.StreamAccumulator()
    for chunk in decode([data for _, data in encode_all(decode(gemini_stream()))]):
        acc.add(chunk)
    msg = acc.result()["choices"][0]["message"]
    assert msg["content"] == "Sure, " and len(msg["tool_calls"]) == 2


def test_stream_encoder_finish_without_finish_reason() -> None:
    encoder = g.StreamEncoder(model="m", request_id="r")
    events = encoder.encode(c.ChunkBuilder().text("hi")) + encoder.finish()
    assert events[-1][1]["candidates"][0]["finishReason"] == "STOP"
    assert encoder.finish() == []


def test_errors() -> None:
    assert g.error_body(429, "slow") == {"error": {"code": 429, "message": "slow",
                                                   "status": "RESOURCE_EXHAUSTED"}}
    assert g.error_body(401, "x")["error"]["status"] == "UNAUTHENTICATED"
    assert g.error_body(404, "x")["error"]["status"] == "NOT_FOUND"
    assert g.error_body(503, "x")["error"]["status"] == "UNAVAILABLE"
    assert g.error_body(500, "x")["error"]["status"] == "INTERNAL"
    assert g.error_body(400, "x")["error"]["status"] == "INVALID_ARGUMENT"
    body = b'[{"error": {"code": 400, "message": "bad key", "status": "INVALID_ARGUMENT"}}]'
    assert g.parse_error(400, body) == ("INVALID_ARGUMENT", "bad key")
    assert g.parse_error(503, b"\xff\xfe") [0] == "UNAVAILABLE"
    [(name, data)] = g.StreamEncoder(model="m", request_id="r").error(500, "boom", "api_error")
    assert name == "" and data["error"]["status"] == "INTERNAL"

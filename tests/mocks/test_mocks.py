"""The mocks speak each provider's real wire format: the official SDKs parse every answer."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from tests.mocks import MockServer, start_mock_server
from tests.mocks.common import PACED_PIECE, Scenario, build_script, pick_scenario, prompt_words
from tests.mocks.fast_openai import FastConfig, start_fast_server

PROMPT = "Say hello to the test suite"  # 6 words
WEATHER_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    with start_mock_server() as server:
        yield server


def expected_text(family: str) -> str:
    return f"Hello from mock {family}! This is a scripted reply."


# ----------------------------------------------------------------------------------- scenarios


def test_pick_scenario() -> None:
    assert pick_scenario("mock-tool", {}).name == "tool"
    assert pick_scenario("openai/mock-parallel-tools", {}).name == "parallel-tools"
    assert pick_scenario("mock-reasoning-content", {}).name == "reasoning-content"
    assert pick_scenario("mock-tool:latest", {}).name == "tool"
    assert pick_scenario("gpt-4o", {}).name == "text"
    assert pick_scenario("gpt-4o", {"x-mock-scenario": "mock-json"}).name == "json"
    assert pick_scenario("mock-429", {}) == Scenario("error", status=429)
    slow = pick_scenario("mock-slow-250", {})
    assert (slow.name, slow.delay_ms) == ("slow", 250)
    assert pick_scenario("mock-text", {"x-mock-delay-ms": "30"}).delay_ms == 30


def test_usage_is_deterministic() -> None:
    body = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": PROMPT}]}
    assert prompt_words(body) == 8
    s = build_script("openai", Scenario("text"), "m", body)
    assert s.input_tokens == 8 and s.output_tokens == len(expected_text("openai").split())
    limited = build_script("openai", Scenario("text"), "m", {**body, "max_tokens": 2})
    assert limited.finish == "length" and limited.full_text == "Hello from"


# ----------------------------------------------------------------------------------- openai chat


def oai(mock: MockServer, key: str = "sk-test") -> openai.OpenAI:
    return openai.OpenAI(base_url=mock.base_url("openai"), api_key=key, max_retries=0)


def user(text: str = PROMPT) -> list[Any]:
    return [{"role": "user", "content": text}]


def test_openai_chat_text(mock: MockServer) -> None:
    raw = oai(mock).chat.completions.with_raw_response.create(model="mock-text", messages=user())
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-ratelimit-remaining-requests"] == "9999"
    r = raw.parse()
    assert r.choices[0].message.content == expected_text("openai")
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.prompt_tokens == 6 and r.usage.completion_tokens == 9
    assert r.model == "mock-text"


def test_openai_chat_stream_with_usage(mock: MockServer) -> None:
    stream = oai(mock).chat.completions.create(
        model="mock-text", messages=user(), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected_text("openai")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 15
    assert len(chunks) > 5  # really streamed in pieces


def test_openai_chat_stream_tool_helper(mock: MockServer) -> None:
    with oai(mock).chat.completions.stream(
        model="mock-tool",
        messages=user(),
        tools=[WEATHER_TOOL_OPENAI],  # type: ignore[list-item]
    ) as stream:
        deltas = [e for e in stream if e.type == "tool_calls.function.arguments.delta"]
        final = stream.get_final_completion()
    assert len(deltas) >= 3
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}  # type: ignore[union-attr]
    assert call.id == "call_mock0"


def test_openai_chat_parallel_tools(mock: MockServer) -> None:
    tools: Any = [WEATHER_TOOL_OPENAI, TIME_TOOL_OPENAI]
    r = oai(mock).chat.completions.create(model="mock-parallel-tools", messages=user(), tools=tools)
    calls = r.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]  # type: ignore[union-attr]
    assert [json.loads(c.function.arguments)["city"] for c in calls] == ["Paris", "Tokyo"]  # type: ignore[union-attr]
    stream = oai(mock).chat.completions.create(
        model="mock-parallel-tools", messages=user(), tools=tools, stream=True
    )
    args: dict[int, str] = {}
    for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or []:
            args[tc.index] = args.get(tc.index, "") + (tc.function.arguments or "" if tc.function else "")
    assert {i: json.loads(a) for i, a in args.items()} == {0: {"city": "Paris"}, 1: {"city": "Tokyo"}}


def test_openai_chat_reasoning(mock: MockServer) -> None:
    r = oai(mock).chat.completions.create(model="mock-reasoning", messages=user())
    assert r.usage is not None and r.usage.completion_tokens_details is not None
    assert r.usage.completion_tokens_details.reasoning_tokens == 15
    stream = oai(mock).chat.completions.create(model="mock-reasoning-content", messages=user(), stream=True)
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in stream)
    assert reasoning.startswith("Let me think.")


def test_openai_chat_length_and_json(mock: MockServer) -> None:
    r = oai(mock).chat.completions.create(model="mock-length", messages=user())
    assert r.choices[0].finish_reason == "length"
    r = oai(mock).chat.completions.create(model="mock-text", messages=user(), max_tokens=2)
    assert (r.choices[0].finish_reason, r.choices[0].message.content) == ("length", "Hello from")
    r = oai(mock).chat.completions.create(
        model="mock-json", messages=user(), response_format={"type": "json_object"}
    )
    assert json.loads(r.choices[0].message.content or "") == {"name": "mock", "family": "openai", "ok": True}


@pytest.mark.parametrize(
    ("model", "exc", "status"),
    [
        ("mock-429", openai.RateLimitError, 429),
        ("mock-500", openai.InternalServerError, 500),
        ("mock-401", openai.AuthenticationError, 401),
        ("mock-400", openai.BadRequestError, 400),
    ],
)
def test_openai_chat_errors(
    mock: MockServer, model: str, exc: type[openai.APIStatusError], status: int
) -> None:
    with pytest.raises(exc) as info:
        oai(mock).chat.completions.create(model=model, messages=user())
    assert info.value.status_code == status
    assert (
        isinstance(info.value.body, dict) and {"message", "type", "param", "code"} <= info.value.body.keys()
    )
    if status == 429:
        assert info.value.response.headers["retry-after"] == "1"
    with pytest.raises(exc):
        oai(mock).chat.completions.create(model=model, messages=user(), stream=True)


def test_openai_bad_key(mock: MockServer) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        oai(mock, key="bad-key").models.list()
    assert info.value.code == "invalid_api_key"


def test_openai_chat_error_mid_stream(mock: MockServer) -> None:
    stream = oai(mock).chat.completions.create(model="mock-error-mid", messages=user(), stream=True)
    seen: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == "Hello from"
    assert "server had an error" in info.value.message


def test_openai_chat_drop_mid_stream(mock: MockServer) -> None:
    stream = oai(mock).chat.completions.create(model="mock-drop", messages=user(), stream=True)
    with pytest.raises(openai.APIConnectionError):
        list(stream)


def test_openai_models_embeddings_images(mock: MockServer) -> None:
    client = oai(mock)
    ids = [m.id for m in client.models.list()]
    assert "mock-tool" in ids and "mock-embedding" in ids
    emb = client.embeddings.create(model="mock-embedding", input=["one two", "three"], dimensions=8)
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 8
    assert emb.usage.prompt_tokens == 3
    again = client.embeddings.create(
        model="mock-embedding", input="one two", dimensions=8, encoding_format="float"
    )
    assert again.data[0].embedding == pytest.approx(emb.data[0].embedding, abs=1e-6)
    img = client.images.generate(model="dall-e-3", prompt="a cat")
    assert img.data and img.data[0].url and img.data[0].revised_prompt == "a cat"
    img = client.images.generate(model="gpt-image-1", prompt="a cat")
    assert img.data and img.data[0].b64_json and img.usage is not None


# ----------------------------------------------------------------------------------- openai responses


def test_responses_text(mock: MockServer) -> None:
    r = oai(mock).responses.create(model="mock-text", input=PROMPT, instructions="Be brief.")
    assert r.output_text == expected_text("openai-responses")
    assert r.status == "completed" and r.instructions == "Be brief."
    assert r.usage is not None and r.usage.input_tokens == 8 and r.usage.output_tokens == 9


def test_responses_stream_text(mock: MockServer) -> None:
    with oai(mock).responses.stream(model="mock-text", input=PROMPT) as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == final.output_text
    assert final.output_text == expected_text("openai-responses")
    assert final.usage is not None and final.usage.total_tokens == 15


def test_responses_stream_tools(mock: MockServer) -> None:
    tools: Any = [
        {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}},
        {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}},
    ]
    stream = oai(mock).responses.create(model="mock-parallel-tools", input=PROMPT, tools=tools, stream=True)
    events = list(stream)
    arg_deltas = [e for e in events if e.type == "response.function_call_arguments.delta"]
    assert len(arg_deltas) >= 4
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [json.loads(e.arguments)["city"] for e in done] == ["Paris", "Tokyo"]
    final = events[-1]
    assert final.type == "response.completed"
    calls = [o for o in final.response.output if o.type == "function_call"]
    assert [(c.name, c.call_id) for c in calls] == [("get_weather", "call_mock0"), ("get_time", "call_mock1")]


def test_responses_reasoning(mock: MockServer) -> None:
    r = oai(mock).responses.create(
        model="mock-reasoning", input=PROMPT, reasoning={"effort": "low", "summary": "auto"}
    )
    kinds = [o.type for o in r.output]
    assert kinds == ["reasoning", "message"]
    assert r.output[0].summary[0].text.startswith("Let me think.")  # type: ignore[union-attr]
    assert r.usage is not None and r.usage.output_tokens_details.reasoning_tokens == 15
    with oai(mock).responses.stream(
        model="mock-reasoning", input=PROMPT, reasoning={"summary": "auto"}
    ) as stream:
        summary = "".join(e.delta for e in stream if e.type == "response.reasoning_summary_text.delta")
    assert summary.startswith("Let me think.")


def test_responses_incomplete_and_errors(mock: MockServer) -> None:
    r = oai(mock).responses.create(model="mock-length", input=PROMPT)
    assert r.status == "incomplete" and r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens"
    with pytest.raises(openai.RateLimitError):
        oai(mock).responses.create(model="mock-429", input=PROMPT)
    events = list(oai(mock).responses.create(model="mock-error-mid", input=PROMPT, stream=True))
    assert [e.type for e in events][-2:] == ["error", "response.failed"]


# ----------------------------------------------------------------------------------- anthropic


def ant(mock: MockServer, key: str = "sk-ant-test") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=mock.base_url("anthropic"), api_key=key, max_retries=0)


ANT_TOOLS: Any = [
    {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
    {"name": "get_time", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
]


def test_anthropic_text(mock: MockServer) -> None:
    raw = ant(mock).messages.with_raw_response.create(
        model="mock-text", max_tokens=100, system="Be brief.", messages=user()
    )
    assert raw.headers["request-id"].startswith("req_")
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "3999"
    m = raw.parse()
    assert m.content[0].type == "text" and m.content[0].text == expected_text("anthropic")
    assert m.stop_reason == "end_turn"
    assert (m.usage.input_tokens, m.usage.output_tokens) == (8, 9)
    sent = mock.last(path="/v1/messages")
    # anthropic 2.x sends the key as a bearer token; older SDKs and curl use x-api-key
    key = sent.headers.get("x-api-key") or sent.headers["authorization"].removeprefix("Bearer ")
    assert key == "sk-ant-test" and sent.headers["anthropic-version"]


def test_anthropic_stream_text(mock: MockServer) -> None:
    with ant(mock).messages.stream(model="mock-text", max_tokens=100, messages=user()) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == expected_text("anthropic")
    assert (
        final.stop_reason == "end_turn" and final.usage.output_tokens == 9 and final.usage.input_tokens == 6
    )


def test_anthropic_stream_tools(mock: MockServer) -> None:
    with ant(mock).messages.stream(
        model="mock-parallel-tools", max_tokens=100, messages=user(), tools=ANT_TOOLS
    ) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert final.stop_reason == "tool_use"
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"city": "Tokyo"}),
    ]
    m = ant(mock).messages.create(model="mock-tool", max_tokens=100, messages=user(), tools=ANT_TOOLS)
    assert m.content[0].type == "tool_use" and m.content[0].input == {"city": "Paris", "unit": "celsius"}


def test_anthropic_thinking(mock: MockServer) -> None:
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    with ant(mock).messages.stream(
        model="mock-reasoning", max_tokens=2048, messages=user(), thinking=thinking
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    assert any(e.type == "thinking" for e in events) and any(e.type == "signature" for e in events)
    block = final.content[0]
    assert block.type == "thinking" and block.thinking.startswith("Let me think.") and block.signature
    assert final.content[1].type == "text"
    plain = ant(mock).messages.create(model="mock-reasoning", max_tokens=100, messages=user())
    assert [b.type for b in plain.content] == ["text"]  # no thinking unless enabled


def test_anthropic_forced_tool_json(mock: MockServer) -> None:
    m = ant(mock).messages.create(
        model="mock-json",
        max_tokens=100,
        messages=user(),
        tools=[{"name": "answer", "input_schema": {"type": "object"}}],
        tool_choice={"type": "tool", "name": "answer"},
    )
    assert m.stop_reason == "tool_use" and m.content[0].type == "tool_use"
    assert m.content[0].input == {"name": "mock", "family": "anthropic", "ok": True}


@pytest.mark.parametrize(
    ("model", "exc", "status"),
    [
        ("mock-429", anthropic.RateLimitError, 429),
        ("mock-500", anthropic.InternalServerError, 500),
        ("mock-529", anthropic.OverloadedError, 529),
        ("mock-400", anthropic.BadRequestError, 400),
    ],
)
def test_anthropic_errors(
    mock: MockServer, model: str, exc: type[anthropic.APIStatusError], status: int
) -> None:
    with pytest.raises(exc) as info:
        ant(mock).messages.create(model=model, max_tokens=10, messages=user())
    assert info.value.status_code == status
    body = info.value.body
    assert isinstance(body, dict) and body["type"] == "error" and {"type", "message"} <= body["error"].keys()


def test_anthropic_auth_and_version(mock: MockServer) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        ant(mock, key="bad-key").messages.create(model="mock-text", max_tokens=10, messages=user())
    r = httpx.post(
        f"{mock.url}/v1/messages", json={"model": "mock-text", "max_tokens": 5, "messages": user()}
    )
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = httpx.post(
        f"{mock.url}/v1/messages",
        json={"model": "mock-text", "max_tokens": 5, "messages": user()},
        headers={"x-api-key": "k"},
    )
    assert r.status_code == 400 and "anthropic-version" in r.json()["error"]["message"]


def test_anthropic_error_mid_stream(mock: MockServer) -> None:
    with pytest.raises(anthropic.APIStatusError) as info:
        with ant(mock).messages.stream(model="mock-error-mid", max_tokens=100, messages=user()) as stream:
            for _ in stream:
                pass
    assert isinstance(info.value.body, dict) and info.value.body["error"]["type"] == "overloaded_error"


def test_anthropic_count_tokens_and_raw_frames(mock: MockServer) -> None:
    count = ant(mock).messages.count_tokens(model="mock-text", messages=user(), system="Be brief.")
    assert count.input_tokens == 8
    r = httpx.post(
        f"{mock.url}/v1/messages",
        json={"model": "mock-text", "max_tokens": 5, "messages": user(), "stream": True},
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
    )
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert r.text.startswith('event: message_start\ndata: {"type":"message_start","message":{"id":"msg_01')
    assert r.text.endswith('event: message_stop\ndata: {"type":"message_stop"}\n\n')
    assert "event: ping\n" in r.text


# ----------------------------------------------------------------------------------- gemini


_GEMINI_CLIENTS: dict[tuple[str, str], genai.Client] = {}


def gem(mock: MockServer, key: str = "gm-test") -> genai.Client:
    """A google-genai client (kept alive: a collected Client closes its connection pool)."""
    if (mock.url, key) not in _GEMINI_CLIENTS:
        options = genai_types.HttpOptions(base_url=mock.base_url("gemini"), api_version="v1beta")
        _GEMINI_CLIENTS[(mock.url, key)] = genai.Client(api_key=key, http_options=options)
    return _GEMINI_CLIENTS[(mock.url, key)]


GEM_TOOLS: list[Any] = [
    genai_types.Tool(
        function_declarations=[
            genai_types.FunctionDeclaration(
                name="get_weather", parameters=genai_types.Schema(type=genai_types.Type.OBJECT)
            ),
            genai_types.FunctionDeclaration(
                name="get_time", parameters=genai_types.Schema(type=genai_types.Type.OBJECT)
            ),
        ]
    )
]


def test_gemini_text(mock: MockServer) -> None:
    r = gem(mock).models.generate_content(model="mock-text", contents=PROMPT)
    assert r.text == expected_text("gemini")
    assert r.candidates and r.candidates[0].finish_reason == genai_types.FinishReason.STOP
    u = r.usage_metadata
    assert u is not None and (u.prompt_token_count, u.candidates_token_count, u.total_token_count) == (
        6,
        9,
        15,
    )
    sent = mock.last(path=":generateContent")
    assert (
        sent.headers["x-goog-api-key"] == "gm-test"
        and sent.path == "/v1beta/models/mock-text:generateContent"
    )


def test_gemini_stream(mock: MockServer) -> None:
    chunks = list(gem(mock).models.generate_content_stream(model="mock-text", contents=PROMPT))
    assert len(chunks) == 9
    assert "".join(c.text or "" for c in chunks) == expected_text("gemini")
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert last.usage_metadata is not None and last.usage_metadata.total_token_count == 15
    assert mock.last(path=":streamGenerateContent").query == {"alt": "sse"}


def test_gemini_tools(mock: MockServer) -> None:
    config = genai_types.GenerateContentConfig(tools=GEM_TOOLS)
    r = gem(mock).models.generate_content(model="mock-parallel-tools", contents=PROMPT, config=config)
    calls = r.function_calls or []
    assert [(c.name, c.args) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"city": "Tokyo"}),
    ]
    chunks = list(gem(mock).models.generate_content_stream(model="mock-tool", contents=PROMPT, config=config))
    streamed = [c for ch in chunks for c in ch.function_calls or []]
    assert [(c.name, c.args) for c in streamed] == [("get_weather", {"city": "Paris", "unit": "celsius"})]


def test_gemini_thoughts(mock: MockServer) -> None:
    config = genai_types.GenerateContentConfig(
        thinking_config=genai_types.ThinkingConfig(include_thoughts=True, thinking_budget=512)
    )
    r = gem(mock).models.generate_content(model="mock-reasoning", contents=PROMPT, config=config)
    parts = r.candidates[0].content.parts  # type: ignore[index,union-attr]
    assert parts and parts[0].thought and (parts[0].text or "").startswith("Let me think.")
    assert parts[1].thought_signature and parts[1].text == "Hello from mock gemini after thinking!"
    assert r.usage_metadata is not None and r.usage_metadata.thoughts_token_count == 15
    chunks = list(
        gem(mock).models.generate_content_stream(model="mock-reasoning", contents=PROMPT, config=config)
    )
    thought_parts = [p for c in chunks for p in c.candidates[0].content.parts if p.thought]  # type: ignore[index,union-attr]
    assert len(thought_parts) == 15
    plain = gem(mock).models.generate_content(model="mock-reasoning", contents=PROMPT)
    assert not any(p.thought for p in plain.candidates[0].content.parts)  # type: ignore[index,union-attr]


def test_gemini_errors(mock: MockServer) -> None:
    with pytest.raises(genai_errors.ClientError) as info:
        gem(mock).models.generate_content(model="mock-429", contents=PROMPT)
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"
    with pytest.raises(genai_errors.ServerError) as server_info:
        gem(mock).models.generate_content(model="mock-500", contents=PROMPT)
    assert server_info.value.code == 500 and server_info.value.status == "INTERNAL"
    with pytest.raises(genai_errors.ClientError) as key_info:
        gem(mock, key="bad-key").models.generate_content(model="mock-text", contents=PROMPT)
    assert key_info.value.code == 400 and "API key not valid" in (key_info.value.message or "")
    seen: list[str] = []
    with pytest.raises(genai_errors.ServerError):
        for chunk in gem(mock).models.generate_content_stream(model="mock-error-mid", contents=PROMPT):
            seen.append(chunk.text or "")
    assert "".join(seen) == "Hello from"
    r = httpx.post(f"{mock.url}/v1beta/models/mock-text:generateContent", json={"contents": []})
    assert r.status_code == 403 and r.json()["error"]["status"] == "PERMISSION_DENIED"


def test_gemini_models_and_key_query(mock: MockServer) -> None:
    names = [m.name for m in gem(mock).models.list()]
    assert "models/mock-text" in names
    r = httpx.post(
        f"{mock.url}/v1beta/models/mock-text:streamGenerateContent",
        params={"alt": "sse", "key": "k"},
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    )
    frames = [f for f in r.text.split("\r\n\r\n") if f]
    assert all(f.startswith('data: {"candidates":[') for f in frames) and len(frames) == 9
    assert '"finishReason":"STOP"' in frames[-1]


# ----------------------------------------------------------------------------------- ollama


def oll(mock: MockServer) -> ollama.Client:
    return ollama.Client(host=mock.base_url("ollama"))


OLL_TOOLS: Any = [WEATHER_TOOL_OPENAI, TIME_TOOL_OPENAI]


def test_ollama_chat(mock: MockServer) -> None:
    r = oll(mock).chat(model="mock-text", messages=user())
    assert r.message.content == expected_text("ollama")
    assert r.done and r.done_reason == "stop" and (r.prompt_eval_count, r.eval_count) == (6, 9)
    assert r.total_duration and r.eval_duration
    parts = list(oll(mock).chat(model="mock-text", messages=user(), stream=True))
    assert "".join(p.message.content or "" for p in parts) == expected_text("ollama")
    assert parts[-1].done and parts[-1].eval_count == 9 and not any(p.done for p in parts[:-1])


def test_ollama_tools_and_thinking(mock: MockServer) -> None:
    r = oll(mock).chat(model="mock-parallel-tools", messages=user(), tools=OLL_TOOLS)
    calls = r.message.tool_calls or []
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"city": "Tokyo"}),
    ]
    parts = list(oll(mock).chat(model="mock-reasoning", messages=user(), think=True, stream=True))
    thinking = "".join(p.message.thinking or "" for p in parts)
    assert thinking.startswith("Let me think.")
    assert "".join(p.message.content or "" for p in parts) == "Hello from mock ollama after thinking!"
    r = oll(mock).chat(model="mock-length", messages=user())
    assert r.done_reason == "length"


def test_ollama_errors_and_tags(mock: MockServer) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        oll(mock).chat(model="mock-500", messages=user())
    assert info.value.status_code == 500
    with pytest.raises(ollama.ResponseError) as info:
        list(oll(mock).chat(model="mock-429", messages=user(), stream=True))
    assert info.value.status_code == 429
    with pytest.raises(ollama.ResponseError):
        list(oll(mock).chat(model="mock-error-mid", messages=user(), stream=True))
    names = [m.model for m in oll(mock).list().models]
    assert "mock-text:latest" in names
    r = httpx.post(f"{mock.url}/api/chat", json={"model": "mock-text", "messages": user()})
    lines = r.text.splitlines()
    assert r.headers["content-type"] == "application/x-ndjson" and len(lines) == 10  # streams by default
    assert json.loads(lines[-1])["done"] is True


def test_echo_and_cached_usage(mock: MockServer) -> None:
    r = oai(mock).chat.completions.create(model="mock-echo", messages=user("repeat these exact words"))
    assert r.choices[0].message.content == "repeat these exact words"
    r = oai(mock).chat.completions.create(model="mock-cached", messages=user())
    assert r.usage is not None and r.usage.prompt_tokens_details is not None
    assert (r.usage.prompt_tokens, r.usage.prompt_tokens_details.cached_tokens) == (6, 3)
    m = ant(mock).messages.create(model="mock-cached", max_tokens=100, messages=user())
    # Anthropic counts cache reads apart from input_tokens
    assert (m.usage.input_tokens, m.usage.cache_read_input_tokens) == (3, 3)
    g = gem(mock).models.generate_content(model="mock-cached", contents=PROMPT)
    assert g.usage_metadata is not None and g.usage_metadata.cached_content_token_count == 3


# ----------------------------------------------------------------------------------- recorder, timing


def test_recorder(mock: MockServer) -> None:
    mock.clear()
    oai(mock).chat.completions.create(
        model="mock-text", messages=user(), extra_body={"x_unknown_field": {"kept": True}}
    )
    rec = mock.last(family="openai", path="/v1/chat/completions")
    assert rec.method == "POST" and rec.body["model"] == "mock-text"
    assert rec.body["x_unknown_field"] == {"kept": True}
    assert rec.headers["authorization"] == "Bearer sk-test"
    assert b'"x_unknown_field"' in rec.raw_body
    listed = httpx.get(f"{mock.url}/_mock/requests", params={"family": "openai"}).json()["requests"]
    assert len(listed) == 1 and listed[0]["body"]["messages"] == user()
    assert httpx.delete(f"{mock.url}/_mock/requests").json() == {"cleared": 1}
    assert mock.requests() == []


def test_slow_delays(mock: MockServer) -> None:
    start = time.monotonic()
    oai(mock).chat.completions.create(model="mock-slow-150", messages=user())
    assert time.monotonic() - start >= 0.15
    start = time.monotonic()
    chunks = list(
        oai(mock).chat.completions.create(
            model="mock-text",
            messages=user(),
            stream=True,
            extra_headers={"x-mock-delay-ms": "0", "x-mock-chunk-delay-ms": "20"},
        )
    )
    assert time.monotonic() - start >= 20 * (len(chunks) - 1) / 1000


# ----------------------------------------------------------------------------------- fast mode


def test_fast_openai_mock() -> None:
    with start_fast_server(FastConfig(tokens=5)) as fast:
        client = openai.OpenAI(base_url=f"{fast.url}/v1", api_key="k", max_retries=0)
        r = client.chat.completions.create(model="any", messages=user())
        assert r.choices[0].message.content == " tok" * 5 and r.usage is not None
        assert r.usage.completion_tokens == 5
        chunks = list(
            client.chat.completions.create(
                model="any", messages=user(), stream=True, stream_options={"include_usage": True}
            )
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == " tok" * 5
        assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 15
        assert [m.id for m in client.models.list()] == ["mock-fast"]
    with start_fast_server(FastConfig(latency_ms=30, tokens=5, tps=100)) as paced:
        client = openai.OpenAI(base_url=f"{paced.url}/v1", api_key="k", max_retries=0)
        start = time.monotonic()
        stamps = []
        for chunk in client.chat.completions.create(model="any", messages=user(), stream=True):
            stamps.append(time.monotonic() - start)
            del chunk
        assert stamps[0] >= 0.03  # latency before the first byte
        assert stamps[-1] - stamps[0] >= 0.04  # 5 tokens at 100 tokens/s


# ----------------------------------------------------------------------------------- paced streams

PACED_REQUESTS: dict[str, tuple[str, dict[str, Any]]] = {
    "openai": ("/v1/chat/completions", {"model": "mock-paced-3", "stream": True, "messages": user()}),
    "openai-responses": ("/v1/responses", {"model": "mock-paced-3", "stream": True, "input": PROMPT}),
    "anthropic": ("/v1/messages", {"model": "mock-paced-3", "stream": True, "max_tokens": 64,
                                   "messages": user()}),
    "gemini": ("/v1beta/models/mock-paced-3:streamGenerateContent?alt=sse",
               {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}),
    "ollama": ("/api/chat", {"model": "mock-paced-3", "messages": user()}),
}


@pytest.mark.parametrize("family", list(PACED_REQUESTS))
def test_paced_stream_sends_indexed_pieces_300ms_apart(mock: MockServer, family: str) -> None:
    path, body = PACED_REQUESTS[family]
    headers = {"authorization": "Bearer sk-test", "x-api-key": "sk-test", "anthropic-version": "2023-06-01",
               "x-goog-api-key": "gm-test"}
    received: list[tuple[float, bytes]] = []
    with httpx.stream("POST", f"{mock.url}{path}", json=body, headers=headers, timeout=10) as response:
        assert response.status_code == 200
        for piece in response.iter_raw():
            received.append((time.time(), piece))
    pieces = [m for _, raw in received for m in PACED_PIECE.finditer(raw.decode())]
    tokens = {m.group(1) for m in pieces}
    assert len(tokens) == 1
    sent = mock.sent_times(tokens.pop())
    assert sorted(sent) == [0, 1, 2]
    assert sent[1] - sent[0] >= 0.29 and sent[2] - sent[1] >= 0.29
    # Each piece is in the provider's framing: the first frame naming it holds it alone.
    first_seen = [int(m.group(2)) for m in pieces]
    assert first_seen[:3] == [0, 1, 2]

"""The format routes beyond the chat matrix: passthrough, seed headers, token counting, model
lists, error shapes on the wire, and accounting of translated and passthrough streams."""

from __future__ import annotations

import json

import anthropic
import httpx
import ollama
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gt

from tests.mocks.server import MockServer
from tests.support import Gateway

pytestmark = pytest.mark.xdist_group("gateway")


def _anthropic(gateway: Gateway, key: str | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=key or gateway.api_key, max_retries=0)


def _gemini(gateway: Gateway, key: str | None = None) -> genai.Client:
    return genai.Client(api_key=key or gateway.api_key,
                        http_options=gt.HttpOptions(base_url=gateway.url, api_version="v1beta"))


def _auth(gateway: Gateway) -> dict[str, str]:
    return {"authorization": f"Bearer {gateway.api_key}"}


def test_passthrough_keeps_unknown_fields(gateway: Gateway, mock_upstream: MockServer) -> None:
    message = _anthropic(gateway).messages.create(
        model="myanthropic/mock-text", max_tokens=64, messages=[{"role": "user", "content": "hi"}],
        extra_body={"omniroute_probe": {"nested": [1, 2]}, "metadata": {"user_id": "u-1"}})
    assert message.content[0].text == "Hello from mock anthropic! This is a scripted reply."  # type: ignore[union-attr]
    sent = mock_upstream.last(path="/v1/messages").body
    assert sent["omniroute_probe"] == {"nested": [1, 2]} and sent["metadata"] == {"user_id": "u-1"}
    assert sent["model"] == "mock-text"  # only the model name changed


def test_translation_sends_only_what_the_upstream_knows(gateway: Gateway, mock_upstream: MockServer) -> None:
    _anthropic(gateway).messages.create(
        model="myopenai/mock-text", max_tokens=64, system="Be brief.",
        messages=[{"role": "user", "content": "hi"}], extra_body={"omniroute_probe": 1})
    sent = mock_upstream.last(path="/v1/chat/completions").body
    assert "omniroute_probe" not in sent
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["max_tokens"] == 64


@pytest.mark.parametrize("stream", [False, True])
def test_seed_headers(gateway: Gateway, stream: bool) -> None:
    # One idempotency key per cell: a key reused with another stream flag is a 409.
    idempotency_key = f"idem-123-{'stream' if stream else 'whole'}"
    headers = {**_auth(gateway), "idempotency-key": idempotency_key, "x-request-id": "client-req-9",
               "x-omniroute-progress": "true"}
    body = {"model": "myanthropic/mock-text", "max_tokens": 32, "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream("POST", f"{gateway.url}/v1/messages", json=body, headers=headers) as response:
        response.read()
    assert response.status_code == 200
    assert response.headers["idempotency-key"] == idempotency_key
    assert response.headers["x-request-id"] == "client-req-9"
    assert response.headers["x-omniroute-request-id"]
    assert response.headers["x-omniroute-progress"] == "enabled"
    assert response.headers.get("x-omniroute-cache") == (None if stream else "MISS")


def test_anthropic_count_tokens_says_how_it_counted(gateway: Gateway) -> None:
    raw = _anthropic(gateway).messages.with_raw_response.count_tokens(
        model="myanthropic/mock-text", system="You are terse.",
        messages=[{"role": "user", "content": "How many tokens is this sentence?"}],
        tools=[{"name": "get_weather", "description": "Weather.", "input_schema": {"type": "object"}}])
    counted = raw.parse()
    assert 5 < counted.input_tokens < 200  # the mock counts prompt words
    # An Anthropic model is counted by Anthropic itself, through the router and an executor.
    assert raw.headers["x-omniroute-token-count"] == "provider"


def test_gemini_count_tokens_and_model_list(gateway: Gateway) -> None:
    client = _gemini(gateway)
    counted = client.models.count_tokens(model="mygemini/mock-text", contents="How many tokens is this?")
    assert counted.total_tokens and counted.total_tokens > 3
    names = {model.name for model in client.models.list()}
    assert {"models/myanthropic/mock-text", "models/mygemini/mock-text"} <= names
    assert client.models.get(model="myollama/mock-text").name == "models/myollama/mock-text"


def test_ollama_model_list_and_v1_path(gateway: Gateway) -> None:
    client = ollama.Client(host=gateway.url, headers=_auth(gateway))
    assert {"myollama/mock-text", "myopenai/gpt-4o-mini"} <= {m.model for m in client.list().models}
    response = httpx.post(f"{gateway.url}/v1/api/chat", headers=_auth(gateway), json={
        "model": "myanthropic/mock-text", "stream": False, "messages": [{"role": "user", "content": "hi"}]})
    assert response.json()["message"]["content"] == "Hello from mock anthropic! This is a scripted reply."
    assert response.json()["done"] is True


def test_wrong_key_is_401_in_each_format(gateway: Gateway) -> None:
    with pytest.raises(anthropic.AuthenticationError) as ant:
        _anthropic(gateway, "sk-wrong-000").messages.create(
            model="myanthropic/mock-text", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert ant.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    gemini = _gemini(gateway, "sk-wrong-000")  # held: the SDK closes its HTTP client when collected
    with pytest.raises(genai_errors.ClientError) as gem:
        gemini.models.generate_content(model="mygemini/mock-text", contents="hi")
    assert gem.value.code == 401 and gem.value.status == "UNAUTHENTICATED"
    with pytest.raises(ollama.ResponseError) as oll:
        ollama.Client(host=gateway.url).chat(model="myollama/mock-text",
                                             messages=[{"role": "user", "content": "hi"}])
    assert oll.value.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-wrong-000", max_retries=0).responses.create(
            model="myresponses/mock-text", input="hi")


@pytest.mark.parametrize(("path", "body", "status", "shape"), [
    ("/v1/messages", {"model": "myanthropic/mock-text", "max_tokens": 8}, 400,
     lambda b: b["type"] == "error" and b["error"]["type"] == "invalid_request_error"),
    ("/v1/messages", {"model": "nosuch/x", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]},
     404, lambda b: b["error"]["type"] == "not_found_error"),
    ("/v1beta/models/mygemini/mock-text:frobnicate", {"contents": []}, 404,
     lambda b: b["error"]["status"] == "NOT_FOUND"),
    ("/v1beta/models/mygemini/mock-text:streamGenerateContent", {"contents": [{"parts": [{"text": "hi"}]}]},
     400, lambda b: "alt=sse" in b["error"]["message"]),
    ("/v1beta/models/mygemini/mock-text:generateContent", {"contents": []}, 400,
     lambda b: b["error"]["status"] == "INVALID_ARGUMENT"),
    ("/api/chat", {"model": "myollama/mock-text"}, 400, lambda b: isinstance(b["error"], str)),
    ("/v1/responses", {"model": "myresponses/mock-text"}, 400, lambda b: b["error"]["param"] == "input"),
])
def test_bad_input_is_a_4xx_in_the_format(gateway: Gateway, path: str, body: dict[str, object],
                                          status: int, shape: object) -> None:
    response = httpx.post(f"{gateway.url}{path}", json=body, headers=_auth(gateway))
    assert response.status_code == status
    assert shape(response.json())  # type: ignore[operator]


@pytest.mark.parametrize(("path", "body", "error_frame"), [
    ("/v1/messages", {"model": "myopenai/mock-error-mid", "max_tokens": 32},
     lambda lines: "event: error" in lines and not any("message_stop" in line for line in lines)),
    ("/v1/messages", {"model": "myanthropic/mock-drop", "max_tokens": 32},
     lambda lines: "event: error" in lines),
    ("/v1/responses", {"model": "myanthropic/mock-error-mid"},
     lambda lines: "event: error" in lines and not any("response.completed" in line for line in lines)),
    ("/v1beta/models/myollama/mock-error-mid:streamGenerateContent?alt=sse", None,
     lambda lines: json.loads(lines[-1].removeprefix("data: "))["error"]["code"] >= 500),
    ("/api/chat", {"model": "mygemini/mock-error-mid"},
     lambda lines: isinstance(json.loads(lines[-1])["error"], str)),
])
def test_mid_stream_failure_ends_with_the_format_error_event(gateway: Gateway, path: str,
                                                             body: dict[str, object] | None,
                                                             error_frame: object) -> None:
    if body is None:
        payload: dict[str, object] = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    elif path == "/v1/responses":
        payload = {**body, "input": "hi", "stream": True}
    else:
        payload = {**body, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream("POST", f"{gateway.url}{path}", json=payload, headers=_auth(gateway),
                      timeout=20) as response:
        lines = [line for line in response.iter_lines() if line]
    assert response.status_code == 200 and len(lines) > 2  # it had started
    assert error_frame(lines)  # type: ignore[operator]
    _heal(gateway, str(body["model"]) if body else path.split("/")[3])


def _heal(gateway: Gateway, model: str) -> None:
    """A success on the provider that just failed: it resets the router's count of consecutive
    failures of that connection, so that failure tests never open a breaker for later tests."""
    provider = model.split("/")[0]
    response = httpx.post(f"{gateway.url}/v1/chat/completions", headers=_auth(gateway), json={
        "model": f"{provider}/mock-text", "messages": [{"role": "user", "content": "still there?"}]})
    assert response.status_code == 200


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/messages", {"model": "myanthropic/mock-text", "max_tokens": 32}),  # passthrough
    ("/v1/messages", {"model": "mygemini/mock-text", "max_tokens": 32}),    # translated
    ("/api/chat", {"model": "myollama/mock-text"}),                         # passthrough NDJSON
    ("/v1/responses", {"model": "myresponses/mock-text"}),                  # passthrough typed SSE
])
def test_streams_are_accounted(gateway: Gateway, path: str, body: dict[str, object]) -> None:
    key = "input" if path == "/v1/responses" else "messages"
    value: object = "count me" if key == "input" else [{"role": "user", "content": "count me"}]
    with httpx.stream("POST", f"{gateway.url}{path}", json={**body, key: value, "stream": True},
                      headers=_auth(gateway)) as response:
        response.read()
        request_id = response.headers["x-omniroute-request-id"]
    row = gateway.usage_row(request_id)
    assert row["stream"] is True and row["status"] == 200
    assert (row["input_tokens"], row["output_tokens"]) == (2, 9)

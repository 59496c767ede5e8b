"""The walking skeleton end to end: the official openai SDK → edge → router → executor → mock
OpenAI upstream and back, then the usage row in Postgres."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.mocks.server import MockServer
from tests.support import Gateway, wait_for

pytestmark = pytest.mark.xdist_group("gateway")


def client(gateway: Gateway, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key or gateway.api_key, max_retries=0)


def test_non_streaming_answer_and_usage_row(gateway: Gateway, mock_upstream: MockServer) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="myopenai/gpt-4o-mini", messages=[{"role": "user", "content": "hello there friend"}])
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello from mock openai! This is a scripted reply."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens == 3

    sent = mock_upstream.last(path="/v1/chat/completions")
    assert sent.body["model"] == "gpt-4o-mini"  # provider prefix removed
    assert sent.headers["authorization"] == "Bearer sk-upstream-1"  # decrypted credential

    row = gateway.usage_row(raw.headers["x-request-id"])
    assert (row["provider"], row["connection"], row["model"]) == ("myopenai", "primary", "gpt-4o-mini")
    assert (row["input_tokens"], row["output_tokens"], row["status"]) == (3, 9, 200)
    assert row["key_id"].startswith("key_") and row["stream"] is False
    assert row["latency_ms"] > 0


def test_streaming_with_usage_arrives_chunk_by_chunk(gateway: Gateway) -> None:
    stream = client(gateway).chat.completions.create(
        model="myopenai/gpt-4o-mini", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "stream please"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from mock openai! This is a scripted reply."
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 3  # not one blob
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 9
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]


def test_streaming_without_usage_gets_no_usage_chunk_but_is_accounted(gateway: Gateway,
                                                                       mock_upstream: MockServer) -> None:
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions",
                      headers={"authorization": f"Bearer {gateway.api_key}"},
                      json={"model": "myopenai/gpt-4o-mini", "stream": True,
                            "messages": [{"role": "user", "content": "no usage please"}]}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        request_id = response.headers["x-request-id"]
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    payloads = [json.loads(line[6:]) for line in lines[:-1]]
    assert all(p["choices"] for p in payloads)  # the usage-only chunk was not forwarded
    # … although the gateway asked the upstream for it, for accounting:
    assert mock_upstream.last(path="/v1/chat/completions").body["stream_options"] == {"include_usage": True}
    row = gateway.usage_row(request_id)
    assert row["stream"] is True and row["output_tokens"] == 9 and row["ttft_ms"] > 0


def test_missing_or_wrong_key_is_401_in_openai_shape(gateway: Gateway) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        client(gateway, key="sk-wrong-key-000000000").chat.completions.create(
            model="myopenai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 401
    body = httpx.post(f"{gateway.url}/v1/chat/completions", json={"model": "m", "messages": []})
    assert body.status_code == 401
    assert body.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(("payload", "status", "needle"), [
    ({"messages": [{"role": "user", "content": "hi"}]}, 400, "model"),
    ({"model": "myopenai/gpt-4o-mini"}, 400, "messages"),
    ({"model": "myopenai/gpt-4o-mini", "messages": "nope"}, 400, "messages"),
    ({"model": "nosuchprovider/gpt", "messages": [{"role": "user", "content": "hi"}]}, 404, "nosuchprovider"),
    ({"model": "bare-model-name", "messages": [{"role": "user", "content": "hi"}]}, 400, "provider/model"),
])
def test_bad_input_gets_a_4xx_that_says_what_is_wrong(gateway: Gateway, payload: dict[str, object],
                                                      status: int, needle: str) -> None:
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=payload,
                          headers={"authorization": f"Bearer {gateway.api_key}"})
    assert response.status_code == status
    error = response.json()["error"]
    assert needle in error["message"] and error["type"]


def test_malformed_json_is_400_via_the_sdk(gateway: Gateway) -> None:
    response = httpx.post(f"{gateway.url}/v1/chat/completions", content=b'{"model": ',
                          headers={"authorization": f"Bearer {gateway.api_key}",
                                   "content-type": "application/json"})
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]
    with pytest.raises(openai.BadRequestError):
        client(gateway).chat.completions.create(model="myopenai/gpt-4o-mini", messages=[])


def test_upstream_error_is_passed_on_with_its_status(gateway: Gateway) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        client(gateway).chat.completions.create(model="myopenai/mock-429",
                                                messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 429
    assert caught.value.response.headers.get("retry-after")
    row = gateway.usage_row(caught.value.response.headers["x-request-id"])
    assert row["status"] == 429 and row["error_class"] == "rate_limited"
    assert row["failed_attempts"] == ["myopenai/primary:429"]


def test_models_lists_configured_models(gateway: Gateway) -> None:
    ids = {model.id for model in client(gateway).models.list()}
    assert {"myopenai/gpt-4o-mini", "myopenai/mock-tool"} <= ids


def test_one_trace_spans_edge_router_executor_and_accounting(gateway: Gateway) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="myopenai/gpt-4o-mini", messages=[{"role": "user", "content": "trace me"}])
    request_id = raw.headers["x-request-id"]
    gateway.usage_row(request_id)

    def spans_of_request() -> dict[str, dict[str, object]] | None:
        spans = [json.loads(line) for line in gateway.trace_file.read_text().splitlines()]
        router = next((s for s in spans if s["name"] == "router.chat"
                       and s["attributes"].get("omniroute.request_id") == request_id), None)
        if router is None:
            return None
        trace_id = router["context"]["trace_id"]
        by_service = {s["resource"]["attributes"]["service.name"]: s for s in spans
                      if s["context"]["trace_id"] == trace_id}
        linked = [s for s in spans if s["name"] == "accounting.record_batch"
                  and any(link["context"]["trace_id"] == trace_id for link in s["links"])]
        if linked:
            by_service["omniroute-accounting"] = linked[0]
        return by_service if len(by_service) == 4 else None

    services = wait_for(spans_of_request, timeout=10)
    assert set(services) == {"omniroute-edge", "omniroute-router", "omniroute-executor",
                             "omniroute-accounting"}
    executor_span = services["omniroute-executor"]
    assert executor_span["parent_id"] == services["omniroute-router"]["context"]["span_id"]

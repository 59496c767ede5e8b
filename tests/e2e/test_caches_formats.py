"""The exact cache, the semantic cache and idempotency replay for every client format, through the
running stack with the official SDKs: each format against an upstream of its own family (the
body passes through and the answer comes back in the caller's format) and against another family
(translated), whole and streamed. The second identical call is answered without an upstream
call, with the same content, and its usage row says it was a cache hit. A reused idempotency key
(or X-Request-Id) with a different body, model or stream flag is a 409 in the caller's format.
Embeddings, images and transcriptions retried with the same key run and are billed once."""

from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.format_clients import CLIENTS, Ask, FormatClient, Result
from tests.mocks.server import MockServer
from tests.support import Gateway, wait_for

pytestmark = pytest.mark.xdist_group("gateway")

# client format → (a provider of its own family: passthrough, one of another family: translated)
FAMILIES = {"openai_chat": ("myopenai", "myanthropic"), "openai_responses": ("myresponses", "myopenai"),
            "anthropic": ("myanthropic", "myopenai"), "gemini": ("mygemini", "myopenai"),
            "ollama": ("myollama", "myopenai")}
# how a request asks for each mechanism
ASK = {"exact": lambda marker: {"cache-control": "max-age=60"},
       "idempotency": lambda marker: {"idempotency-key": f"idem-{marker}"},
       "semantic": lambda marker: {"x-omniroute-semantic-cache": "true"}}

client_names = pytest.mark.parametrize("client_name", list(FAMILIES))
routes = pytest.mark.parametrize("route", ["passthrough", "translated"])
streaming = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])


def _client(gateway: Gateway, name: str, headers: dict[str, str]) -> FormatClient:
    return CLIENTS[name](gateway.url, gateway.api_key, headers)


def _model(client_name: str, route: str, marker: str) -> str:
    """A model of this cell only (`<provider>/<marker>/mock-text`; the mock reads the last
    segment): its upstream calls and usage rows are found by the marker."""
    own, other = FAMILIES[client_name]
    return f"{own if route == 'passthrough' else other}/{marker}/mock-text"


def _upstream_calls(mock: MockServer, marker: str) -> int:
    return sum(1 for r in mock.requests() if marker in r.path or marker in r.raw_body.decode(errors="replace"))


def _cache_hits(gateway: Gateway, model: str, count: int) -> list[bool]:
    """The usage rows of a model's requests (in order), once all `count` are there."""
    def rows() -> list[Any] | None:
        found = gateway.rows("SELECT cache_hit FROM usage WHERE requested_model = %s ORDER BY started_at",
                             (model,))
        return found if len(found) == count else None
    return [bool(hit) for (hit,) in wait_for(rows)]


@client_names
@routes
@streaming
@pytest.mark.parametrize("mechanism", ["exact", "idempotency", "semantic"])
def test_a_repeat_is_answered_without_the_upstream(gateway: Gateway, mock_upstream: MockServer,
                                                   client_name: str, route: str, stream: bool,
                                                   mechanism: str) -> None:
    marker = uuid.uuid4().hex
    client = _client(gateway, client_name, ASK[mechanism](marker))
    model = _model(client_name, route, marker)
    first = client.chat(model, [Ask(f"hello there {marker}")], stream)
    assert first.text.startswith("Hello from mock")
    second = client.chat(model, [Ask(f"hello there {marker}")], stream)
    assert second == first
    assert _upstream_calls(mock_upstream, marker) == 1
    assert _cache_hits(gateway, model, 2) == [False, True]
@client_names
@routes
def test_the_semantic_cache_hits_paraphrases_and_misses_other_questions(
        gateway: Gateway, mock_upstream: MockServer, client_name: str, route: str) -> None:
    """The router's default embedder is the bundled sentence model (requirements.txt)."""
    marker = uuid.uuid4().hex  # in the model only: a marker in the prompt would change its meaning
    client = _client(gateway, client_name, ASK["semantic"](marker))
    model = _model(client_name, route, marker)
    first = client.chat(model, [Ask("How do I reverse a list in Python?")], False)
    assert client.chat(model, [Ask("What's the way to reverse a Python list?")], False) == first
    assert _upstream_calls(mock_upstream, marker) == 1
    client.chat(model, [Ask("How do I sort a list in Python?")], False)
    assert _upstream_calls(mock_upstream, marker) == 2
    assert _cache_hits(gateway, model, 3) == [False, True, False]


def _refused(client: FormatClient, model: str, prompt: str, stream: bool) -> tuple[int | None, Result | None]:
    try:
        return None, client.chat(model, [Ask(prompt)], stream)
    except Exception as exc:  # the SDK's own error type: its status says it read the error
        return client.status_of(exc), None


@client_names
@pytest.mark.parametrize("header", ["idempotency-key", "x-request-id"])
def test_a_reused_key_with_another_request_is_a_conflict(gateway: Gateway, mock_upstream: MockServer,
                                                         client_name: str, header: str) -> None:
    marker = uuid.uuid4().hex
    client = _client(gateway, client_name, {header: f"key-{marker}"})
    model = _model(client_name, "passthrough", marker)
    first = client.chat(model, [Ask(f"first {marker}")], False)
    assert first.text.startswith("Hello from mock")
    other_model = _model(client_name, "translated", marker)
    for changed_model, prompt, stream in ((model, f"second {marker}", False),  # another body
                                          (other_model, f"first {marker}", False),  # another model
                                          (model, f"first {marker}", True)):  # another stream flag
        status, answer = _refused(client, changed_model, prompt, stream)
        assert (status, answer) == (409, None)
    assert client.chat(model, [Ask(f"first {marker}")], False) == first  # the same request: replayed
    assert _upstream_calls(mock_upstream, marker) == 1


AUDIO = b"RIFF" + b"\x00" * 63996  # 64000 bytes: the mock says 2.0 s


def _operation(gateway: Gateway, operation: str, marker: str, headers: dict[str, str],
               changed: bool = False) -> httpx.Response:
    """One embeddings, image or transcription request of this marker (`changed`: another body)."""
    auth = {"authorization": f"Bearer {gateway.api_key}", **headers}
    text = f"{'other ' if changed else ''}a red cat {marker}"
    if operation == "embeddings":
        return httpx.post(f"{gateway.url}/v1/embeddings", headers=auth,
                          json={"model": "myopenai/text-embedding-3-small", "input": text})
    if operation == "images":
        return httpx.post(f"{gateway.url}/v1/images/generations", headers=auth,
                          json={"model": "myopenai/dall-e-3", "prompt": text})
    audio = AUDIO + marker.encode() + (b"!" if changed else b"")
    return httpx.post(f"{gateway.url}/v1/audio/transcriptions", headers=auth,
                      files={"file": ("talk.wav", io.BytesIO(audio), "audio/wav")},
                      data={"model": "myopenai/whisper-1"})


UPSTREAM_PATHS = {"embeddings": "/v1/embeddings", "images": "/v1/images/generations",
                  "transcriptions": "/v1/audio/transcriptions"}


@pytest.mark.parametrize("operation", list(UPSTREAM_PATHS))
def test_a_retried_operation_runs_and_bills_once(gateway: Gateway, mock_upstream: MockServer,
                                                  operation: str) -> None:
    marker = uuid.uuid4().hex
    key = {"idempotency-key": f"op-{marker}"}
    before = len(mock_upstream.requests(path=UPSTREAM_PATHS[operation]))
    first = _operation(gateway, operation, marker, key)
    assert first.status_code == 200, first.text
    again = _operation(gateway, operation, marker, key)
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["x-omniroute-idempotent"] == "true"
    assert len(mock_upstream.requests(path=UPSTREAM_PATHS[operation])) == before + 1
    billed = gateway.usage_row(first.headers["x-omniroute-request-id"])
    replayed = gateway.usage_row(again.headers["x-omniroute-request-id"])
    assert not billed["cache_hit"] and replayed["cache_hit"]
    assert (replayed["input_tokens"], replayed["output_tokens"], replayed["audio_seconds"]) == (0, 0, None)
    assert replayed["cost_usd"] == 0
    if operation != "images":  # the mock's images carry no usage
        assert billed["input_tokens"] > 0 or billed["audio_seconds"] > 0

    reused = _operation(gateway, operation, marker, key, changed=True)
    assert reused.status_code == 409 and reused.json()["error"]["code"] == "idempotency_key_reused"
    assert len(mock_upstream.requests(path=UPSTREAM_PATHS[operation])) == before + 1

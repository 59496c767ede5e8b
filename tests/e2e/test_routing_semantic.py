"""The semantic cache end to end: the openai SDK through the gateway, prompts embedded by a
configured embedding model through the gateway's own executors (the mock's /v1/embeddings),
vectors in qdrant-client local mode; on per key or per request; GET/DELETE /api/cache."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.e2e.routing_stack import upstream_calls
from tests.mocks.server import MockServer
from tests.support import Gateway, running_gateway

pytestmark = pytest.mark.xdist_group("routing-semantic")

SEM_KEY = "sk-omni-semantic-0000000000000"
PLAIN_KEY = "sk-omni-plain-000000000000000"
ON = {"X-OmniRoute-Semantic-Cache": "true"}


@pytest.fixture(scope="module")
def stack(mock_upstream: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("semantic")
    config = {
        "providers": [{"id": "myopenai", "type": "openai", "base_url": f"{mock_upstream.url}/v1",
                       "models": ["gpt-4o-mini", "mock-embedding"],
                       "connections": [{"name": "primary", "api_key": "sk-upstream-1"}]}],
        "keys": [{"name": "sem", "key": SEM_KEY}, {"name": "plain", "key": PLAIN_KEY}],
        "routing": {"cache": {"semantic_keys": ["sem"], "semantic_model": "myopenai/mock-embedding"}},
    }
    with running_gateway(tmp, config, api_key=SEM_KEY,
                         extra_env={"QDRANT_URL": str(tmp / "qdrant")}) as running:
        yield running


@pytest.fixture(scope="module")
def admin(stack: Gateway) -> Iterator[httpx.Client]:
    login = httpx.post(f"{stack.url}/api/auth/login", json={"password": stack.admin_password})
    assert login.status_code == 200
    token = login.json()["token"]
    with httpx.Client(base_url=stack.url, headers={"authorization": f"Bearer {token}"}) as client:
        yield client


def _ask(stack: Gateway, key: str, prompt: str, headers: dict[str, str] | None = None,
         stream: bool = False) -> tuple[dict[str, str], str]:
    client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=key, max_retries=0)
    messages = [{"role": "user", "content": prompt}]
    if stream:
        with client.chat.completions.with_streaming_response.create(
                model="myopenai/gpt-4o-mini", messages=messages, stream=True,  # type: ignore[arg-type]
                extra_headers=headers) as response:
            chunks = list(response.parse())
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)  # type: ignore[union-attr,attr-defined]
            return dict(response.headers), text
    raw = client.chat.completions.with_raw_response.create(
        model="myopenai/gpt-4o-mini", messages=messages, extra_headers=headers)  # type: ignore[arg-type]
    return dict(raw.headers), raw.parse().choices[0].message.content or ""


def _embedded(mock: MockServer, marker: str) -> int:
    return sum(1 for r in mock.requests(path="/v1/embeddings") if marker in r.raw_body.decode())


def test_per_request_switch_embeds_through_the_gateway_and_hits(stack: Gateway, mock_upstream: MockServer,
                                                               admin: httpx.Client) -> None:
    marker = uuid.uuid4().hex
    prompt = f"what is a semantic cache? {marker}"
    headers, _ = _ask(stack, PLAIN_KEY, prompt)
    assert "x-omniroute-semantic-cache" not in headers  # off by default for this key

    first, text = _ask(stack, PLAIN_KEY, prompt, ON)
    assert first["x-omniroute-semantic-cache"] == "MISS"
    second, again = _ask(stack, PLAIN_KEY, prompt, ON)
    assert second["x-omniroute-semantic-cache"] == "HIT" and second["x-omniroute-cache"] == "HIT"
    assert float(second["x-omniroute-semantic-similarity"]) > 0.999 and again == text
    assert len(upstream_calls(mock_upstream, marker)) == 2  # the uncached one and the first MISS
    assert _embedded(mock_upstream, marker) == 2  # the configured model, through an executor
    embedded = [r for r in mock_upstream.requests(path="/v1/embeddings") if marker in r.raw_body.decode()]
    assert embedded[0].body["model"] == "mock-embedding"

    # Scoped by key: the same prompt from the other key is not served from this key's entry.
    other, _ = _ask(stack, SEM_KEY, prompt)
    assert other["x-omniroute-semantic-cache"] == "MISS"


def test_per_key_switch_streams_a_hit_and_the_cache_api(stack: Gateway, mock_upstream: MockServer,
                                                        admin: httpx.Client) -> None:
    marker = uuid.uuid4().hex
    prompt = f"tell me about vectors {marker}"
    first, text = _ask(stack, SEM_KEY, prompt)
    assert first["x-omniroute-semantic-cache"] == "MISS"
    streamed, again = _ask(stack, SEM_KEY, prompt, stream=True)
    assert streamed["x-omniroute-semantic-cache"] == "HIT" and again == text
    assert len(upstream_calls(mock_upstream, marker)) == 1
    off, _ = _ask(stack, SEM_KEY, prompt, {"X-OmniRoute-Semantic-Cache": "false"})
    assert "x-omniroute-semantic-cache" not in off  # the request's own word wins

    # A second entry of this test's own (other tests on this stack may or may not have run first).
    _ask(stack, SEM_KEY, f"and about matrices {marker}")
    stats = admin.get("/api/cache").json()["semanticCache"]
    assert stats["memorySize"] >= 2 and stats["dbSize"] == stats["memorySize"]
    assert stats["memoryMaxSize"] == 10_000 and 0 < stats["hitRate"] < 1
    assert stats["model"] == "myopenai/mock-embedding"

    cleared = admin.delete("/api/cache").json()
    assert cleared["semanticCleared"] >= 2
    after, _ = _ask(stack, SEM_KEY, prompt)
    assert after["x-omniroute-semantic-cache"] == "MISS"
    stats = admin.get("/api/cache").json()["semanticCache"]
    assert stats["memorySize"] == 1 and stats["hitRate"] == 0.0

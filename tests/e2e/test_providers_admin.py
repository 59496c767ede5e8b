"""The provider catalog and checks through the admin API: catalog, custom models, live model
lists (through an executor, cached), real test calls, validation, provider nodes; and per-account
max concurrency and proxies."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.mocks.server import MockServer
from tests.support import Gateway

pytestmark = pytest.mark.xdist_group("gateway")


@pytest.fixture(scope="module")
def admin(gateway: Gateway) -> Iterator[httpx.Client]:
    session = gateway.admin_client()
    yield session


def test_catalog_lists_types_and_models_by_kind(admin: httpx.Client) -> None:
    catalog = admin.get("/api/models/catalog").json()
    types = {t["type"]: t for t in catalog["types"]}
    for name in ("openai", "anthropic", "gemini", "azure-openai", "mistral", "groq", "together", "fireworks",
                 "deepseek", "xai", "openrouter", "nebius", "nvidia", "cerebras", "perplexity", "cohere",
                 "hyperbolic", "sambanova", "ollama", "lmstudio", "vllm", "deepgram", "assemblyai",
                 "openai-compatible", "anthropic-compatible"):
        assert name in types, name
    assert types["deepgram"]["auth"] == "token" and types["deepgram"]["capabilities"] == ["audio"]
    providers = {p["id"]: p for p in catalog["providers"]}
    assert providers["pv-together"]["models"]["image"] == ["black-forest-labs/FLUX.1-schnell"]


def test_custom_models(admin: httpx.Client) -> None:
    added = admin.post("/api/provider-models",
                       json={"provider": "myopenai", "model": "ft-mine", "kind": "chat"})
    assert added.status_code == 201, added.text
    assert {"provider": "myopenai", "model": "ft-mine", "kind": "chat"} in \
        admin.get("/api/provider-models").json()["models"]
    catalog = {p["id"]: p for p in admin.get("/api/models/catalog").json()["providers"]}
    assert "ft-mine" in catalog["myopenai"]["models"]["chat"]
    assert admin.post("/api/provider-models", json={"provider": "nope", "model": "x"}).status_code == 404
    assert admin.post("/api/provider-models", json={"provider": "myopenai", "model": "x",
                                                    "kind": "video"}).status_code == 400
    mine = {"provider": "myopenai", "model": "ft-mine"}
    assert admin.delete("/api/provider-models", params=mine).status_code == 200
    assert admin.delete("/api/provider-models", params=mine).status_code == 404


@pytest.mark.parametrize(("provider", "expected"), [
    ("myopenai", "mock-text"), ("myanthropic", "mock-text"), ("mygemini", "mock-text"),
    ("myollama", "mock-text:latest"), ("pv-azure", "gpt-4o-mini"), ("pv-deepgram", "nova-3")])
def test_live_model_lists_are_fetched_through_an_executor_and_cached(
        admin: httpx.Client, mock_upstream: MockServer, provider: str, expected: str) -> None:
    first = admin.get(f"/api/providers/{provider}/models", params={"refresh": "true"})
    assert first.status_code == 200, first.text
    assert expected in {m["id"] for m in first.json()["models"]} and first.json()["cached"] is False
    assert admin.get(f"/api/providers/{provider}/models").json()["cached"] is True


def test_provider_test_reports_latency_and_errors(admin: httpx.Client, mock_upstream: MockServer) -> None:
    for provider in ("myopenai", "myanthropic", "mygemini", "myollama", "pv-deepgram", "pv-assembly"):
        tested = admin.post(f"/api/providers/{provider}/test", json={}).json()
        assert tested["ok"] is True and tested["latencyMs"] > 0, (provider, tested)
    failing = admin.post("/api/providers/myopenai/test", json={"model": "mock-429"}).json()
    assert failing["ok"] is False and failing["error"]["status"] == 429
    wrong = admin.post("/api/providers/pv-wrongauth/test", json={}).json()
    assert wrong["ok"] is False and wrong["error"]["status"] == 401


def test_validate_before_saving(admin: httpx.Client, mock_upstream: MockServer) -> None:
    bad_type = admin.post("/api/providers/validate", json={"provider": {"id": "x", "type": "nope"}}).json()
    assert bad_type["valid"] is False and "unknown provider type" in bad_type["errors"][0]["msg"]
    no_url = admin.post("/api/providers/validate",
                        json={"provider": {"id": "x", "type": "openai-compatible"}})
    assert no_url.json()["valid"] is False and no_url.json()["errors"][0]["loc"] == "base_url"
    provider = {"id": "x", "type": "openai-compatible", "base_url": f"{mock_upstream.url}/v1",
                "models": ["mock-text"], "connections": [{"name": "a", "api_key": "sk-good"}]}
    assert admin.post("/api/providers/validate", json={"provider": provider, "test": True}).json()["valid"]
    provider["connections"] = [{"name": "a", "api_key": "bad-key"}]
    checked = admin.post("/api/providers/validate", json={"provider": provider, "test": True}).json()
    assert checked["valid"] is False and checked["test"]["error"]["status"] == 401


def test_provider_nodes(admin: httpx.Client) -> None:
    node = {"id": "my-node", "name": "Local vLLM", "type": "openai-compatible",
            "base_url": "http://10.0.0.5:8000/v1", "prefix": "local"}
    assert admin.post("/api/provider-nodes", json=node).status_code == 201
    assert admin.post("/api/provider-nodes", json=node).status_code == 409
    assert admin.get("/api/provider-nodes/my-node").json()["base_url"] == "http://10.0.0.5:8000/v1"
    assert any(n["id"] == "my-node" for n in admin.get("/api/provider-nodes").json()["nodes"])
    assert admin.post("/api/provider-nodes", json={**node, "id": "n2", "type": "gemini"}).status_code == 400
    assert admin.delete("/api/provider-nodes/my-node").status_code == 200


def test_max_concurrency_per_connection(gateway: Gateway, admin: httpx.Client,
                                        mock_upstream: MockServer) -> None:
    created = admin.post("/api/providers", json={
        "id": "pv-conc", "type": "openai-compatible", "base_url": f"{mock_upstream.url}/v1",
        "models": ["mock-text"], "connections": [{"name": "one", "api_key": "sk-c",
                                                  "settings": {"max_concurrency": 1}}]})
    assert created.status_code == 201, created.text
    try:
        results: list[int] = []

        def call(model: str) -> None:
            results.append(httpx.post(f"{gateway.url}/v1/chat/completions", timeout=30,
                                      headers={"authorization": f"Bearer {gateway.api_key}"},
                                      json={"model": model, "messages": [{"role": "user", "content": "x"}]}
                                      ).status_code)

        for _ in range(50):  # wait for the routers' snapshot
            results.clear()
            call("pv-conc/mock-text")
            if results == [200]:
                break
        results.clear()
        slow = threading.Thread(target=call, args=("pv-conc/mock-slow-800",))
        slow.start()
        time.sleep(0.3)
        call("pv-conc/mock-text")  # the only account is busy: refused with the reason
        slow.join()
        assert sorted(results) == [200, 429], results
        call("pv-conc/mock-text")  # the slot was released
        assert results[-1] == 200
    finally:
        admin.delete("/api/providers/pv-conc")

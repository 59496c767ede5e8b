"""Scripted upstream failures against combos of every strategy and every error class: 429
(Retry-After), 401, 404 (model lock), 5xx, timeouts, caller errors, mid-stream failures;
aliases, wildcards, nested combos, retries and the global fallback model."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator

import httpx
import pytest

from omniroute.config.routing_spec import STRATEGIES
from tests.e2e.routing_stack import RoutingStack, routing_stack, upstream_calls
from tests.mocks.server import MockServer

pytestmark = pytest.mark.xdist_group("routing-scenarios")


@pytest.fixture(scope="module")
def stack(mock_upstream: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoutingStack]:
    base = f"{mock_upstream.url}/v1"

    def provider(pid: str, models: list[str], connections: list[dict[str, object]],
                 **settings: object) -> dict[str, object]:
        return {"id": pid, "type": "openai-compatible", "base_url": base, "models": models,
                "connections": connections, "settings": settings}

    combos: list[dict[str, object]] = [
        {"name": f"s-{s}", "strategy": s, "models": ["broken/mock-503", "good/mock-text"],
         **({"weights": [50, 50]} if s == "weighted" else {})} for s in STRATEGIES]
    combos += [
        {"name": "inner", "models": ["broken/mock-503"]},
        {"name": "outer", "models": ["inner", "good/mock-text"]},
        {"name": "lost", "models": ["broken/mock-503"]},
        {"name": "with404", "models": ["good/mock-404", "good/mock-echo"]},
        {"name": "caller-error", "models": ["good/mock-400", "good/mock-text"]},
        {"name": "slow", "timeout_s": 0.5, "models": ["good/mock-slow-3000", "good/mock-echo"]},
        {"name": "retried", "max_retries": 2, "retry_delay_ms": 20, "models": ["retry/mock-503"]},
        {"name": "cheap", "strategy": "cost-optimized", "models": ["pricey/mock-text", "good/mock-echo"]},
    ]
    config = {
        "providers": [
            provider("good", ["mock-text", "mock-echo"], [{"name": "main", "api_key": "sk-good"}]),
            provider("broken", ["mock-503"], [{"name": "main", "api_key": "sk-broken"}]),
            provider("retry", ["mock-503"], [{"name": "main", "api_key": "sk-retry"}]),
            provider("pricey", ["mock-text"], [{"name": "main", "api_key": "sk-pricey"}]),
            provider("limited", ["mock-text"], [
                {"name": "a", "api_key": "sk-acct-a", "priority": 0,
                 "settings": {"headers": {"x-mock-scenario": "mock-429"}}},
                {"name": "b", "api_key": "sk-acct-b", "priority": 1}]),
            provider("authy", ["mock-text"], [
                {"name": "bad", "api_key": "bad-credential", "priority": 0},
                {"name": "ok", "api_key": "sk-authy-ok", "priority": 1}]),
        ],
        "keys": [{"name": "scenarios", "key": "sk-omni-scenarios-000000000"},
                 {"name": "narrow", "key": "sk-omni-narrow-00000000000000",
                  "allowed_models": ["good/*", "fast"]}],
        "aliases": {"fast": "good/mock-text"},
        "combos": combos,
        "routing": {"fallback_model": "good/mock-echo",
                    "resilience": {"cooldown": {"base_s": 0.001}}},
    }
    with routing_stack(tmp_path_factory.mktemp("scenarios"), config, ["scenarios"]) as running:
        yield running


def _by(mock: MockServer, marker: str, api_key: str) -> int:
    wanted = f"Bearer {api_key}"
    return sum(1 for r in upstream_calls(mock, marker) if r.headers.get("authorization") == wanted)


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_every_strategy_falls_back_past_a_failing_step(stack: RoutingStack, strategy: str) -> None:
    for replica in range(3):
        answer = await stack.chat(replica, f"s-{strategy}", f"strategy {strategy} {uuid.uuid4().hex}")
        assert answer.error is None, answer.error
        assert answer.start is not None and answer.start.provider == "good"
        assert answer.start.combo == f"s-{strategy}"


async def test_429_cools_the_account_down_and_the_next_account_answers(
        stack: RoutingStack, mock_upstream: MockServer) -> None:
    marker = uuid.uuid4().hex
    for replica in range(3):
        answer = await stack.chat(replica, "limited/mock-text", f"429 {marker}")
        assert answer.error is None and answer.start is not None and answer.start.connection == "b"
    assert _by(mock_upstream, marker, "sk-acct-a") == 1  # Retry-After: 1 keeps it out meanwhile


async def test_401_marks_the_account_and_the_next_account_answers(
        stack: RoutingStack, mock_upstream: MockServer) -> None:
    marker = uuid.uuid4().hex
    for replica in range(3):
        answer = await stack.chat(replica, "authy/mock-text", f"401 {marker}")
        assert answer.error is None and answer.start is not None and answer.start.connection == "ok"
    assert _by(mock_upstream, marker, "bad-credential") == 1


async def test_404_locks_the_model_on_that_account(stack: RoutingStack, mock_upstream: MockServer) -> None:
    marker = uuid.uuid4().hex
    for replica in range(2):
        answer = await stack.chat(replica, "with404", f"404 {marker}")
        assert answer.error is None and answer.start is not None and answer.start.model == "mock-echo"
    assert [r.body["model"] for r in upstream_calls(mock_upstream, marker)] == [
        "mock-404", "mock-echo", "mock-echo"]


async def test_a_timeout_falls_back_within_the_combo_timeout(stack: RoutingStack) -> None:
    answer = await stack.chat(0, "slow", f"slow {uuid.uuid4().hex}")
    assert answer.error is None and answer.start is not None and answer.start.model == "mock-echo"


async def test_a_caller_error_is_not_retried_elsewhere(stack: RoutingStack,
                                                       mock_upstream: MockServer) -> None:
    marker = uuid.uuid4().hex
    answer = await stack.chat(0, "caller-error", f"400 {marker}")
    assert answer.error is not None and answer.error.status == 400
    assert len(upstream_calls(mock_upstream, marker)) == 1


async def test_a_failure_after_the_first_byte_ends_the_stream_with_an_error(stack: RoutingStack) -> None:
    answer = await stack.chat(0, "good/mock-drop", f"drop {uuid.uuid4().hex}", stream=True)
    assert answer.chunks and answer.error is not None and answer.error.status >= 500


async def test_retries_then_the_global_fallback_model(stack: RoutingStack, mock_upstream: MockServer) -> None:
    marker = uuid.uuid4().hex
    answer = await stack.chat(0, "retried", f"retry {marker}")
    assert answer.error is None and answer.start is not None and answer.start.model == "mock-echo"
    assert _by(mock_upstream, marker, "sk-retry") == 3  # one try and two retries


async def test_nested_combo_and_exhausted_combo_use_the_fallback(stack: RoutingStack) -> None:
    nested = await stack.chat(0, "outer", f"nested {uuid.uuid4().hex}")
    assert nested.error is None and nested.start is not None and nested.start.model == "mock-text"
    lost = await stack.chat(1, "lost", f"lost {uuid.uuid4().hex}")
    assert lost.error is None and lost.start is not None and lost.start.model == "mock-echo"


async def test_cost_optimized_prefers_the_cheaper_step(stack: RoutingStack) -> None:
    # Prices come from the pricing table ($ per 1M tokens), as /api/pricing edits it; the
    # routers reload it on the announcement. tests/e2e/test_strategies_replicas.py changes them.
    with contextlib.closing(stack.gateway.admin_client()) as admin:
        admin.put("/api/pricing", json={"prices": [
            {"providerType": "openai-compatible", "model": "mock-text", "input": 30, "output": 60},
            {"providerType": "openai-compatible", "model": "mock-echo", "input": 0.15, "output": 0.6},
        ]}).raise_for_status()
    for _ in range(100):
        answer = await stack.chat(0, "cheap", f"cost {uuid.uuid4().hex}")
        if answer.start is not None and answer.start.provider == "good":
            break
        await asyncio.sleep(0.1)
    assert answer.error is None and answer.start is not None and answer.start.provider == "good"


async def test_alias_wildcard_allow_list_and_models_listing(stack: RoutingStack) -> None:
    assert (await stack.chat(0, "fast", "alias", key="narrow")).error is None
    assert (await stack.chat(0, "good/mock-echo", "wildcard", key="narrow")).error is None
    refused = await stack.chat(0, "broken/mock-503", "not allowed", key="narrow")
    assert refused.error is not None and refused.error.status == 403
    listed = await stack.models()
    assert {"s-priority", "outer", "fast", "good/mock-text"} <= set(listed)


def _admin(stack: RoutingStack) -> httpx.Client:
    session = httpx.Client(base_url=stack.gateway.url, timeout=30)
    login = session.post("/api/auth/login", json={"password": stack.gateway.admin_password})
    assert login.status_code == 200
    session.headers["X-CSRF-Token"] = login.json().get("csrfToken", "")
    return session


async def test_management_endpoints_change_routing_live(stack: RoutingStack) -> None:
    admin = _admin(stack)
    alias = {"alias": "quick", "model": "good/mock-echo"}
    assert admin.post("/api/models/alias", json=alias).status_code == 200
    assert admin.get("/api/models/alias").json()["aliases"]["quick"] == "good/mock-echo"
    combo = {"name": "live", "strategy": "priority", "models": ["quick", "good/mock-text"]}
    assert admin.post("/api/combos", json=combo).status_code == 201
    assert admin.post("/api/combos", json=combo).status_code == 409
    assert admin.get("/api/combos/live").json()["models"] == ["quick", "good/mock-text"]
    for _ in range(50):  # config.changed reaches every replica
        if "live" in await stack.models(2):
            break
        await asyncio.sleep(0.1)
    answer = await stack.chat(2, "live", "live combo")
    assert answer.error is None and answer.start is not None and answer.start.model == "mock-echo"
    assert admin.delete("/api/combos/live").status_code == 200
    assert admin.delete("/api/models/alias/quick").status_code == 200

    resilience = admin.get("/api/resilience").json()
    assert "default" in resilience["resilience"]["profiles"] and "broken:main" in resilience["connections"]
    profiles = {"profiles": {"default": {"failure_threshold": 7}}}
    assert admin.put("/api/resilience", json=profiles).status_code == 200
    assert admin.post("/api/resilience/reset", json={}).json()["reset"] >= 0
    assert "scenarios" in admin.get("/api/rate-limits").json()["keys"]
    assert "rateLimit" in admin.get("/api/rate-limit").json()
    listing = {m["model"]: m for m in admin.get("/api/models/availability").json()["models"]}
    assert listing["good/mock-text"]["available"]
    one = admin.post("/api/models/availability", json={"model": "nope/x"}).json()
    assert one["available"] is False and one["reasons"]
    cache = admin.get("/api/cache").json()
    assert cache["idempotency"]["windowMs"] == 5000 and "hitRate" in cache["semanticCache"]
    assert "cleared" in admin.delete("/api/cache").json()
    policy = {"name": "no-broken", "block_models": ["broken/*"]}
    assert admin.post("/api/policies", json=policy).status_code == 200
    assert [p["name"] for p in admin.get("/api/policies").json()["policies"]] == ["no-broken"]
    assert admin.delete("/api/policies/no-broken").status_code == 200
    prompt = {"enabled": True, "prefix": "Be brief."}
    assert admin.put("/api/settings/system-prompt", json=prompt).status_code == 200
    assert admin.get("/api/settings/system-prompt").json()["prefix"] == "Be brief."
    assert admin.put("/api/settings/system-prompt", json={"enabled": False}).status_code == 200
    assert admin.put("/api/settings/thinking-budget", json={"mode": "auto"}).json()["mode"] == "auto"
    assert admin.put("/api/settings/thinking-budget", json={"mode": "passthrough"}).status_code == 200

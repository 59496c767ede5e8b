"""Configuration that heals, through the running stack: fixing a provider's base_url clears what
its connections earned with the wrong one (cooldowns, model locks, breakers), so the next request
works; a 404 for the path says "check the base_url", unlike the provider's "no such model";
Anthropic and Gemini base URLs work without their version segment; DELETE /api/policies by
name; the edge passes each Set-Cookie of the admin as its own line."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis.asyncio as aioredis

from omniroute.config.routing_spec import ResilienceProfile
from omniroute.shared_state.breaker import Breakers
from omniroute.shared_state.cooldown import Cooldowns
from omniroute.shared_state.headroom import Exhausted, Headroom
from tests.mocks.oauth import OAuthServer
from tests.mocks.server import MockServer
from tests.support import REDIS_URL, Gateway, wait_for

pytestmark = pytest.mark.xdist_group("gateway")


@pytest.fixture
def admin(gateway: Gateway) -> Iterator[httpx.Client]:
    client = gateway.admin_client()
    yield client
    client.close()


def chat(gateway: Gateway, model: str, text: str = "hello") -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/chat/completions", timeout=30,
                      headers={"Authorization": f"Bearer {gateway.api_key}"},
                      json={"model": model, "messages": [{"role": "user", "content": text}]})


def routed(gateway: Gateway, model: str) -> bool:
    """Whether the router lists `model` (it has loaded the configuration that declares it)."""
    listed = httpx.get(f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {gateway.api_key}"})
    return model in {m["id"] for m in listed.json()["data"]}


def provider(pid: str, type_: str, base_url: str, models: list[str]) -> dict[str, Any]:
    return {"id": pid, "type": type_, "base_url": base_url, "models": models,
            "connections": [{"name": "main", "api_key": f"{pid}-key"}]}


def health(gateway: Gateway, connection_id: str, model: str) -> dict[str, Any]:
    """The connection's cooldowns, model lock and breaker as the routers keep them in Redis."""
    async def read() -> dict[str, Any]:
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            env = gateway.settings.env
            cooldown = (await Cooldowns(client, env).view([connection_id], model))[connection_id]
            locked = await Cooldowns(client, env).locked_models([connection_id], model)
            breaker = (await Breakers(client, env).view([connection_id]))[connection_id]
            spent = await Headroom(client, env).view([connection_id], model)
            return {"cooldown_s": cooldown.remaining_s, "reason": cooldown.reason,
                    "locked": connection_id in locked, "breaker": breaker.state,
                    "no_headroom": connection_id in spent}
        finally:
            await client.aclose()
    return asyncio.run(read())


def hurt(gateway: Gateway, connection_id: str, model: str) -> None:
    """What a long run of failures leaves: the model locked, the breaker open, no headroom."""
    async def write() -> None:
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            env = gateway.settings.env
            await Cooldowns(client, env).lock_model(connection_id, model, 3600)
            await Breakers(client, env).record(connection_id, False, ResilienceProfile(
                failure_threshold=1, degraded_threshold=1, reset_timeout_s=3600))
            await Headroom(client, env).mark(connection_id, model, Exhausted(3600, "requests"))
        finally:
            await client.aclose()
    asyncio.run(write())


HEALED = {"cooldown_s": 0, "reason": "", "locked": False, "breaker": "CLOSED", "no_headroom": False}


@pytest.mark.parametrize(("type_", "wrong", "fixed"), [
    # Fixed without the version segment, as each family's SDK is configured.
    ("anthropic", "{mock}/wrong/v1", "{mock}"),
    ("gemini", "{mock}/wrong/v1beta", "{mock}"),
    ("openai-compatible", "{mock}/wrong/v1", "{mock}/v1"),
])
def test_fixing_the_base_url_heals_the_connection_at_once(
        gateway: Gateway, admin: httpx.Client, mock_upstream: MockServer,
        type_: str, wrong: str, fixed: str) -> None:
    pid = f"heal-{type_.split('-')[0]}"
    connection_id, model = f"{pid}:main", "mock-text"
    created = admin.post("/api/providers", json=provider(pid, type_, wrong.format(mock=mock_upstream.url),
                                                         [model]))
    assert created.status_code == 201, created.text
    wait_for(lambda: routed(gateway, f"{pid}/{model}"), timeout=5)

    # The wrong base_url: the upstream has no such path. The caller is told to check it, and
    # the connection is cooled down as misconfigured (not the model locked).
    failed = chat(gateway, f"{pid}/{model}")
    assert failed.status_code == 404, failed.text
    assert "check the connection's base_url" in failed.text
    state = health(gateway, connection_id, model)
    assert state["cooldown_s"] > 60 and state["reason"] == "misconfigured" and not state["locked"]
    hurt(gateway, connection_id, model)   # and whatever else a day of failures leaves
    assert health(gateway, connection_id, model)["breaker"] == "OPEN"
    assert health(gateway, connection_id, model)["no_headroom"]
    refused = chat(gateway, f"{pid}/{model}")
    assert refused.status_code != 200    # nothing is tried while it cools down

    # The fix (and one more model, to know when the router has loaded it): every mark is gone
    # and the very next request on the fixed configuration succeeds.
    fix = provider(pid, type_, fixed.format(mock=mock_upstream.url), [model, "mock-echo"])
    assert admin.put(f"/api/providers/{pid}", json=fix).status_code == 200
    assert health(gateway, connection_id, model) == HEALED
    wait_for(lambda: routed(gateway, f"{pid}/mock-echo"), timeout=5)
    answer = chat(gateway, f"{pid}/{model}")
    assert answer.status_code == 200, answer.text
    assert admin.delete(f"/api/providers/{pid}").status_code == 200


def test_a_missing_model_is_not_a_base_url_problem(gateway: Gateway) -> None:
    # The provider's own "no such model" (a correct base_url): the model is locked, and the
    # message is the provider's, not the base_url advice.
    failed = chat(gateway, "myanthropic/mock-404")
    assert failed.status_code == 404, failed.text
    assert "base_url" not in failed.text and "mock-404" in failed.text
    state = health(gateway, "myanthropic:primary", "mock-404")
    assert state["locked"] and state["cooldown_s"] == 0


def test_the_reset_and_a_new_credential_clear_the_connections_marks(
        gateway: Gateway, admin: httpx.Client, mock_upstream: MockServer) -> None:
    pid, model = "heal-cred", "mock-text"
    assert admin.post("/api/providers", json=provider(pid, "openai-compatible", f"{mock_upstream.url}/v1",
                                                      [model])).status_code == 201
    # The reset for one connection clears all three.
    hurt(gateway, f"{pid}:main", model)
    reset = admin.post("/api/resilience/reset", json={"connection": f"{pid}:main"})
    assert reset.status_code == 200 and reset.json() == {"reset": 1, "cooldownsCleared": 1}
    assert health(gateway, f"{pid}:main", model) == HEALED

    # A change that does not touch the way to the upstream keeps the marks …
    hurt(gateway, f"{pid}:main", model)
    same = provider(pid, "openai-compatible", f"{mock_upstream.url}/v1", [model])
    del same["connections"][0]["api_key"]
    same["connections"][0]["priority"] = 3
    assert admin.put(f"/api/providers/{pid}", json=same).status_code == 200
    assert health(gateway, f"{pid}:main", model)["locked"]
    # … a new credential clears them.
    assert admin.put(f"/api/providers/{pid}", json=provider(
        pid, "openai-compatible", f"{mock_upstream.url}/v1", [model])).status_code == 200
    assert health(gateway, f"{pid}:main", model) == HEALED
    assert admin.delete(f"/api/providers/{pid}").status_code == 200


def test_new_oauth_tokens_clear_the_connections_marks(gateway: Gateway, admin: httpx.Client) -> None:
    pid = "heal-oauth"
    with OAuthServer() as server:
        created = admin.post("/api/providers", json={
            "id": pid, "type": "openai-compatible", "base_url": f"{server.url}/v1", "models": ["mock-text"],
            "settings": {"auth": "oauth", "oauth": {
                "authorize_url": f"{server.url}/authorize", "token_url": f"{server.url}/token",
                "client_id": "omniroute", "scopes": ["chat"], "redirect_uri": "http://localhost:20128/callback"}}})
        assert created.status_code == 201, created.text

        def authorize() -> None:
            started = admin.post(f"/api/oauth/{pid}/start", json={"connection": "main"}).json()
            back = parse_qs(urlsplit(httpx.get(started["authUrl"]).headers["location"]).query)
            done = admin.get(f"/api/oauth/{pid}/callback", params={"code": back["code"][0],
                                                                    "state": back["state"][0]})
            assert done.status_code == 200, done.text

        authorize()
        hurt(gateway, f"{pid}:main", "mock-text")
        authorize()   # signed in again: new tokens
        assert health(gateway, f"{pid}:main", "mock-text") == HEALED
        assert admin.delete(f"/api/providers/{pid}").status_code == 200


def test_delete_policies_by_name_beside_the_path(admin: httpx.Client) -> None:
    for name in ("heal-p1", "heal-p2", "heal-p3"):
        made = admin.post("/api/policies", json={"name": name, "block_models": ["nothing/*"]})
        assert made.status_code == 200, made.text

    def names() -> set[str]:
        return {p["name"] for p in admin.get("/api/policies").json()["policies"]}

    assert admin.delete("/api/policies", params={"name": "heal-p1"}).json() == {"deleted": "heal-p1"}
    assert admin.request("DELETE", "/api/policies", json={"name": "heal-p2"}).json() == {"deleted": "heal-p2"}
    assert admin.delete("/api/policies/heal-p3").json() == {"deleted": "heal-p3"}
    assert not names() & {"heal-p1", "heal-p2", "heal-p3"}
    assert admin.delete("/api/policies", params={"name": "heal-p1"}).status_code == 404
    assert admin.delete("/api/policies").status_code == 400


def test_the_edge_passes_each_cookie_on_its_own_line(gateway: Gateway) -> None:
    login = httpx.post(f"{gateway.url}/api/auth/login", json={"password": gateway.admin_password})
    assert login.status_code == 200
    cookies = login.headers.get_list("set-cookie")
    assert len(cookies) == 2 and {c.split("=", 1)[0] for c in cookies} >= {"auth_token"}
    assert len(login.headers.get_list("date")) == 1 and len(login.headers.get_list("server")) == 1
    with httpx.Client(base_url=gateway.url) as jar:   # a cookie jar reads both
        jar.post("/api/auth/login", json={"password": gateway.admin_password})
        assert len(jar.cookies) == 2

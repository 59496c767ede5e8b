"""OAuth connections against the mock OAuth server (tests/mocks/oauth.py), through the running
stack: authorization code with PKCE, device code, refresh before expiry, refresh once after a 401,
a failed refresh (marked, skipped), and two routers refreshing the same token at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest
import redis.asyncio as redis

from omniroute.config.snapshot import Connection
from omniroute.settings import Settings
from tests.mocks.oauth import OAuthServer
from tests.support import Gateway

pytestmark = pytest.mark.xdist_group("gateway")
PROVIDER = "pv-oauth"


@pytest.fixture(scope="module")
def oauth_server() -> Iterator[OAuthServer]:
    with OAuthServer() as server:
        yield server


@pytest.fixture(scope="module")
def admin(gateway: Gateway, oauth_server: OAuthServer) -> Iterator[httpx.Client]:
    session = httpx.Client(base_url=gateway.url, timeout=30)
    login = session.post("/api/auth/login", json={"password": gateway.admin_password})
    session.headers["X-CSRF-Token"] = login.json()["csrfToken"]
    created = session.post("/api/providers", json={
        "id": PROVIDER, "type": "openai-compatible", "base_url": f"{oauth_server.url}/v1",
        "models": ["mock-text"], "settings": {"auth": "oauth", "oauth": {
            "authorize_url": f"{oauth_server.url}/authorize", "token_url": f"{oauth_server.url}/token",
            "device_authorization_url": f"{oauth_server.url}/device/code", "client_id": "omniroute",
            "scopes": ["chat"], "redirect_uri": "http://localhost:20128/callback"}}})
    assert created.status_code == 201, created.text
    yield session
    session.delete(f"/api/providers/{PROVIDER}")


def chat(gateway: Gateway) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/chat/completions", timeout=30,
                      headers={"authorization": f"Bearer {gateway.api_key}"},
                      json={"model": f"{PROVIDER}/mock-text",
                            "messages": [{"role": "user", "content": "hi"}]})


def authorize(admin: httpx.Client, name: str) -> dict[str, object]:
    started = admin.post(f"/api/oauth/{PROVIDER}/start", json={"connection": name}).json()
    query = parse_qs(urlsplit(started["authUrl"]).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["state"] == [started["state"]]
    redirect = httpx.get(started["authUrl"], follow_redirects=False)
    back = parse_qs(urlsplit(redirect.headers["location"]).query)
    done = admin.get(f"/api/oauth/{PROVIDER}/callback", params={"code": back["code"][0],
                                                                "state": back["state"][0]})
    assert done.status_code == 200, done.text
    return dict(done.json())


def status(admin: httpx.Client) -> dict[str, dict[str, object]]:
    listed = admin.get(f"/api/oauth/{PROVIDER}/status").json()["connections"]
    return {c["connection"]: c for c in listed}


def wait_served(gateway: Gateway) -> httpx.Response:
    for _ in range(50):  # the routers reload their snapshot after config.changed
        answer = chat(gateway)
        if answer.status_code == 200:
            return answer
        asyncio.run(asyncio.sleep(0.1))
    return answer


def test_authorization_code_flow_refresh_and_401(gateway: Gateway, admin: httpx.Client,
                                                 oauth_server: OAuthServer) -> None:
    oauth_server.state.expires_in = 3600
    assert authorize(admin, "main")["connected"] is True
    # Tokens are encrypted at rest.
    with psycopg.connect(gateway.settings.database_url) as conn:
        secret, settings = conn.execute("SELECT api_key_enc, settings FROM connections WHERE id = %s",
                                        (f"{PROVIDER}:main",)).fetchone()  # type: ignore[misc]
    assert not secret.startswith("oat-") and not settings["oauth"]["refresh_token_enc"].startswith("ort-")
    assert wait_served(gateway).status_code == 200
    before = oauth_server.state.refreshes
    # The provider revokes the token early: one 401, one refresh, the answer still comes.
    oauth_server.state.access.clear()
    assert chat(gateway).status_code == 200
    assert oauth_server.state.refreshes == before + 1
    # A token that expires within the refresh margin is refreshed before it is used.
    oauth_server.state.expires_in = 30
    oauth_server.state.access.clear()
    assert chat(gateway).status_code == 200  # 401 → refresh → a 30 s token
    refreshed = oauth_server.state.refreshes
    assert chat(gateway).status_code == 200  # 30 s < 60 s margin: refreshed before the call
    assert oauth_server.state.refreshes == refreshed + 1
    assert status(admin)["main"]["status"] == "ok"
    oauth_server.state.expires_in = 3600
    assert chat(gateway).status_code == 200


def test_failed_refresh_marks_and_skips_then_device_flow_connects(
        gateway: Gateway, admin: httpx.Client, oauth_server: OAuthServer) -> None:
    if "main" not in status(admin):
        authorize(admin, "main")
        wait_served(gateway)
    oauth_server.state.fail_refresh = True
    oauth_server.state.access.clear()
    try:
        failed = chat(gateway)
        assert failed.status_code in (401, 503), failed.text
        assert status(admin)["main"]["status"] == "refresh_failed"
        with psycopg.connect(gateway.settings.database_url) as conn:
            stored = conn.execute("SELECT settings->'oauth'->>'status' FROM connections WHERE id = %s",
                                  (f"{PROVIDER}:main",)).fetchone()
        assert stored == ("refresh_failed",)
        calls = oauth_server.state.refreshes
        assert chat(gateway).status_code in (401, 503)
        assert oauth_server.state.refreshes == calls  # skipped: no new refresh attempt

        # Device code flow: a second account takes over.
        started = admin.post(f"/api/oauth/{PROVIDER}/device/start", json={"connection": "device"}).json()
        assert started["userCode"] and started["verificationUri"].endswith("/device")
        assert admin.post(f"/api/oauth/{PROVIDER}/device/poll",
                          json={"handle": started["handle"]}).json()["status"] == "pending"
        httpx.post(f"{oauth_server.url}/device/approve", json={"user_code": started["userCode"]})
        polled = admin.post(f"/api/oauth/{PROVIDER}/device/poll", json={"handle": started["handle"]}).json()
        assert polled["status"] == "connected", polled
        assert wait_served(gateway).status_code == 200  # served by "device"; "main" is skipped
        assert status(admin)["main"]["status"] == "refresh_failed"
    finally:
        oauth_server.state.fail_refresh = False


def test_two_routers_refresh_once(gateway: Gateway, admin: httpx.Client,
                                  oauth_server: OAuthServer) -> None:
    from omniroute.executor_pool import ExecutorPool
    from omniroute_router.selection.oauth_tokens import OAuthTokens

    oauth_server.state.expires_in = 3600
    authorize(admin, "shared")
    with psycopg.connect(gateway.settings.database_url) as conn:
        secret, settings = conn.execute("SELECT api_key_enc, settings FROM connections WHERE id = %s",
                                        (f"{PROVIDER}:shared",)).fetchone()  # type: ignore[misc]
    config = Settings(env=gateway.settings.env, database_url=gateway.settings.database_url,
                      redis_url=gateway.settings.redis_url, master_key=gateway.settings.master_key,
                      executor_addr=f"127.0.0.1:{gateway.stack.ports.executor}")
    from omniroute.secrets import Crypto
    stale = {**settings, "oauth": {**settings["oauth"], "expires_at": 0}}  # both see it expired
    connection = Connection(id=f"{PROVIDER}:shared", provider_id=PROVIDER, name="shared",
                            api_key=Crypto(config.master_key).decrypt(secret), priority=0, enabled=True,
                            settings=stale)
    oauth_server.state.refresh_delay_ms = 300

    async def race() -> list[str]:
        clients = [redis.from_url(config.redis_url) for _ in range(2)]
        pools = [ExecutorPool(config) for _ in range(2)]
        try:
            routers = [OAuthTokens(c, p, config) for c, p in zip(clients, pools, strict=True)]
            tokens = await asyncio.gather(*(r.access_token(connection) for r in routers for _ in range(3)))
            return [t.value or t.error for t in tokens]
        finally:
            for c in clients:
                await c.aclose()
            for p in pools:
                await p.close()

    before = oauth_server.state.refreshes
    try:
        values = asyncio.run(race())
    finally:
        oauth_server.state.refresh_delay_ms = 0
    assert oauth_server.state.refreshes == before + 1  # one refresh for six callers on two routers
    assert len(set(values)) == 1 and values[0].startswith("oat-")

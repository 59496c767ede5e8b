"""Subscription presets (catalog.yaml `oauth`): for each of Claude Code, Codex, GitHub Copilot
and Qwen, the whole life of a connection through the running stack against a mock that follows
that provider's wire format (tests/mocks/oauth_presets.py): authorization (PKCE code or device
code, with the preset's client id, parameters and token body) → token → refresh → API calls
with the headers the provider requires, typed as `<prefix>/<model>`. Only the endpoints' URLs
are pointed at the mock; every other value comes from the preset."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from omniroute.catalog import provider_type
from tests.mocks.oauth import OAuthServer
from tests.mocks.oauth_presets import CODE_ASSIST_PROJECT, CODEX_ACCOUNT, PROFILES
from tests.support import Gateway

pytestmark = pytest.mark.xdist_group("gateway")


@dataclass(frozen=True)
class Preset:
    type: str
    model: str
    api_path: str  # where the preset's base URL sits on the mock


PRESETS = [Preset("claude-code", "claude-opus-4-6", "/v1"), Preset("codex", "gpt-5-codex", "/backend-api/codex"),
           Preset("github-copilot", "gpt-4.1", ""), Preset("qwen-code", "qwen3-coder-plus", "/v1"),
           Preset("gemini-cli", "gemini-2.5-pro", "/v1internal")]


@pytest.fixture(scope="module")
def admin(gateway: Gateway) -> Iterator[httpx.Client]:
    session = httpx.Client(base_url=gateway.url, timeout=30)
    login = session.post("/api/auth/login", json={"password": gateway.admin_password})
    session.headers["X-CSRF-Token"] = login.json()["csrfToken"]
    yield session
    session.close()


@pytest.fixture(params=PRESETS, ids=lambda p: p.type)
def preset(request: pytest.FixtureRequest, admin: httpx.Client) -> Iterator[tuple[Preset, OAuthServer, str]]:
    chosen: Preset = request.param
    with OAuthServer(PROFILES[chosen.type]) as server:
        provider_id = f"pv-{chosen.type}"
        # Only where the endpoints are changes: client id, scopes, flow and headers are the preset's.
        created = admin.post("/api/providers", json={
            "id": provider_id, "type": chosen.type, "base_url": f"{server.url}{chosen.api_path}",
            "settings": {"oauth": {"authorize_url": f"{server.url}/authorize", "token_url": f"{server.url}/token",
                                   "device_authorization_url": f"{server.url}/device/code"}}})
        assert created.status_code == 201, created.text
        try:
            yield chosen, server, provider_id
        finally:
            admin.delete(f"/api/providers/{provider_id}")


def connect(admin: httpx.Client, server: OAuthServer, provider_id: str, kind: str) -> None:
    """The preset's flow, as a user would go through it."""
    if provider_type(kind).oauth["flow"] == "device":  # type: ignore[union-attr]
        started = admin.post(f"/api/oauth/{provider_id}/device/start", json={"connection": "me"})
        assert started.status_code == 200, started.text
        handle = started.json()["handle"]
        pending = admin.post(f"/api/oauth/{provider_id}/device/poll", json={"handle": handle}).json()
        assert pending["status"] == "pending", pending
        httpx.post(f"{server.url}/device/approve", json={"user_code": started.json()["userCode"]})
        polled = admin.post(f"/api/oauth/{provider_id}/device/poll", json={"handle": handle}).json()
        assert polled["status"] == "connected", polled
        return
    started = admin.post(f"/api/oauth/{provider_id}/start", json={"connection": "me"}).json()
    page = httpx.get(started["authUrl"], follow_redirects=False)
    if page.status_code == 200:  # Claude: the page shows "code#state", which the user pastes
        done = admin.get(f"/api/oauth/{provider_id}/callback", params={"code": page.text})
    else:
        assert page.status_code == 302, page.text
        back = parse_qs(urlsplit(page.headers["location"]).query)
        done = admin.get(f"/api/oauth/{provider_id}/callback",
                         params={"code": back["code"][0], "state": back["state"][0]})
    assert done.status_code == 200, done.text


def chat(gateway: Gateway, model: str) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/chat/completions", timeout=30,
                      headers={"authorization": f"Bearer {gateway.api_key}"},
                      json={"model": model, "messages": [{"role": "user", "content": "hi"}]})


def test_preset_connects_refreshes_and_calls_with_its_headers(
        gateway: Gateway, admin: httpx.Client, preset: tuple[Preset, OAuthServer, str]) -> None:
    chosen, server, provider_id = preset
    kind = provider_type(chosen.type)
    assert kind is not None
    model = f"{kind.prefix}/{chosen.model}"
    assert chat(gateway, model).status_code in (401, 404, 503)  # not served without a connection
    connect(admin, server, provider_id, chosen.type)
    answer = wait_served(gateway, model)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"]

    # The mock refuses a live token without the preset's headers: the check above was real.
    token = next(iter(server.state.access))
    bare = httpx.post(f"{server.url}{chosen.api_path}{_endpoint(kind.family)}", timeout=10,
                      headers={"authorization": f"Bearer {token}", "anthropic-version": "2023-06-01"},
                      json={"model": chosen.model, "messages": [{"role": "user", "content": "hi"}],
                            "input": "hi", "max_tokens": 8})
    assert bare.status_code == 400, bare.text

    status = admin.get(f"/api/oauth/{provider_id}/status").json()["connections"]
    assert [c["status"] for c in status] == ["ok"]
    before = server.state.refreshes
    server.state.access.clear()  # the provider revokes the access token
    if PROFILES[chosen.type].refresh_tokens:
        # One 401, one refresh in the preset's token format, and the answer still comes.
        assert chat(gateway, model).status_code == 200
        assert server.state.refreshes == before + 1
    else:
        # Copilot's token has no refresh token: the connection asks to be authorized again, and
        # GitHub is not sent a refresh with an empty refresh token.
        assert chat(gateway, model).status_code in (401, 503)
        assert server.state.refreshes == before
        status = admin.get(f"/api/oauth/{provider_id}/status").json()["connections"]
        assert [c["status"] for c in status] == ["refresh_failed"]


def wait_served(gateway: Gateway, model: str) -> httpx.Response:
    for _ in range(50):  # the routers reload their snapshot after config.changed
        answer = chat(gateway, model)
        if answer.status_code == 200:
            return answer
        time.sleep(0.1)
    return answer


def _endpoint(family: str) -> str:
    return {"anthropic": "/messages", "openai-responses": "/responses",
            "gemini-code-assist": ":generateContent"}.get(family, "/chat/completions")


def test_codex_connection_names_the_chatgpt_account(
        gateway: Gateway, admin: httpx.Client) -> None:
    chosen = PRESETS[1]
    with OAuthServer(PROFILES[chosen.type]) as server:
        created = admin.post("/api/providers", json={
            "id": "pv-codex-account", "type": "codex", "base_url": f"{server.url}{chosen.api_path}",
            "settings": {"oauth": {"authorize_url": f"{server.url}/authorize", "token_url": f"{server.url}/token"}}})
        assert created.status_code == 201, created.text
        try:
            connect(admin, server, "pv-codex-account", "codex")
            provider = admin.get("/api/providers/pv-codex-account").json()
            headers = [c.get("settings", {}).get("headers") for c in provider.get("connections", [])]
            assert {"chatgpt-account-id": CODEX_ACCOUNT} in headers, provider
        finally:
            admin.delete("/api/providers/pv-codex-account")


def test_claude_code_through_the_anthropic_format(gateway: Gateway, admin: httpx.Client) -> None:
    """The product's own example, `cc/claude-opus-4-6`, from an Anthropic client (passthrough):
    the caller's system prompt follows Claude Code's identity line, and its beta flags join the
    preset's oauth flag."""
    chosen = PRESETS[0]
    with OAuthServer(PROFILES[chosen.type]) as server:
        created = admin.post("/api/providers", json={
            "id": "pv-cc-native", "type": "claude-code", "base_url": f"{server.url}/v1",
            "settings": {"oauth": {"authorize_url": f"{server.url}/authorize", "token_url": f"{server.url}/token"}}})
        assert created.status_code == 201, created.text
        try:
            connect(admin, server, "pv-cc-native", "claude-code")
            wait_served(gateway, "cc/claude-opus-4-6")
            answer = httpx.post(f"{gateway.url}/v1/messages", timeout=30,
                                headers={"x-api-key": gateway.api_key, "anthropic-version": "2023-06-01",
                                         "anthropic-beta": "context-management-2025-06-27"},
                                json={"model": "cc/claude-opus-4-6", "max_tokens": 64, "system": "Be brief.",
                                      "messages": [{"role": "user", "content": "hi"}]})
            assert answer.status_code == 200, answer.text
            assert answer.json()["type"] == "message"
            sent = server.app.state.recorder.last(path="/messages")
            assert sent.headers["anthropic-beta"] == "oauth-2025-04-20,context-management-2025-06-27"
            assert sent.body["system"] == [{"type": "text", "text": PROFILES["claude-code"].system_prefix},
                                           {"type": "text", "text": "Be brief."}]
            # The mock refuses a live token and the right headers without the identity line.
            token = next(iter(server.state.access))
            bare = httpx.post(f"{server.url}/v1/messages", timeout=10, json={
                "model": "claude-opus-4-6", "max_tokens": 8, "system": "Be brief.",
                "messages": [{"role": "user", "content": "hi"}]}, headers={
                "authorization": f"Bearer {token}", "anthropic-version": "2023-06-01",
                "anthropic-beta": "oauth-2025-04-20"})
            assert bare.status_code == 400 and bare.json()["error"]["message"] == "Error", bare.text
        finally:
            admin.delete("/api/providers/pv-cc-native")


def test_codex_bodies_follow_the_chatgpt_backend(gateway: Gateway, admin: httpx.Client) -> None:
    """The Codex backend streams only, never stores, wants instructions and refuses an output
    cap: a non-streaming caller gets the collected answer, a streaming one the stream, from an
    OpenAI chat client and a Responses client alike."""
    chosen = PRESETS[1]
    with OAuthServer(PROFILES[chosen.type]) as server:
        created = admin.post("/api/providers", json={
            "id": "pv-codex-body", "type": "codex", "base_url": f"{server.url}{chosen.api_path}",
            "settings": {"oauth": {"authorize_url": f"{server.url}/authorize", "token_url": f"{server.url}/token"}}})
        assert created.status_code == 201, created.text
        try:
            connect(admin, server, "pv-codex-body", "codex")
            assert wait_served(gateway, "cx/gpt-5-codex").status_code == 200
            auth = {"authorization": f"Bearer {gateway.api_key}"}
            whole = httpx.post(f"{gateway.url}/v1/chat/completions", timeout=30, headers=auth, json={
                "model": "cx/gpt-5-codex", "max_tokens": 32,
                "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]})
            assert whole.status_code == 200, whole.text
            assert whole.json()["choices"][0]["message"]["content"] and whole.json()["usage"]["total_tokens"]
            sent = server.app.state.recorder.last(path="/responses").body
            assert sent["stream"] is True and sent["store"] is False and sent["instructions"] == "Be brief."
            assert "max_output_tokens" not in sent

            with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", timeout=30, headers=auth, json={
                    "model": "cx/gpt-5-codex", "stream": True,
                    "messages": [{"role": "user", "content": "hi"}]}) as streamed:
                assert streamed.status_code == 200
                assert "data: [DONE]" in streamed.read().decode()

            native = httpx.post(f"{gateway.url}/v1/responses", timeout=30, headers=auth, json={
                "model": "cx/gpt-5-codex", "max_output_tokens": 32, "store": True,
                "input": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]})
            assert native.status_code == 200, native.text
            assert native.json()["object"] == "response" and native.json()["output"]
            sent = server.app.state.recorder.last(path="/responses").body
            assert sent["instructions"] == "Be brief." and sent["store"] is False and sent["stream"] is True
            assert [item["role"] for item in sent["input"]] == ["user"] and "max_output_tokens" not in sent
        finally:
            admin.delete("/api/providers/pv-codex-body")


def test_start_creates_the_preset_provider_and_uses_the_real_client(admin: httpx.Client) -> None:
    """`/api/oauth/claude-code/start` with no provider yet: one of that type is made, and the
    authorize URL is Anthropic's with the Claude Code client (nothing is called)."""
    try:
        started = admin.post("/api/oauth/claude-code/start", json={})
        assert started.status_code == 200, started.text
        url = urlsplit(started.json()["authUrl"])
        query = parse_qs(url.query)
        assert f"{url.scheme}://{url.netloc}{url.path}" == "https://claude.ai/oauth/authorize"
        assert query["client_id"] == ["9d1c250a-e61b-44d9-88ed-5944d1962f5e"] and query["code"] == ["true"]
        assert query["redirect_uri"] == ["https://console.anthropic.com/oauth/code/callback"]
        assert query["scope"] == ["org:create_api_key user:profile user:inference"]
        provider = admin.get("/api/providers/claude-code").json()
        assert provider["type"] == "claude-code" and not provider["base_url"]  # the type's default
    finally:
        admin.delete("/api/providers/claude-code")


def test_the_catalog_says_how_each_preset_signs_in(admin: httpx.Client) -> None:
    """The dashboard's "Connect" button: each preset's flow and the calls that run it."""
    answer = admin.get("/api/models/catalog")
    assert answer.status_code == 200, answer.text
    types = {t["type"]: t for t in answer.json()["types"]}
    assert types["claude-code"]["login"] == {"flow": "pkce", "start": "/api/oauth/claude-code/start",
                                             "finish": "/api/oauth/claude-code/callback"}
    assert types["codex"]["login"]["flow"] == types["gemini-cli"]["login"]["flow"] == "pkce"
    for name in ("github-copilot", "qwen-code"):
        assert types[name]["login"] == {"flow": "device", "start": f"/api/oauth/{name}/device/start",
                                        "finish": f"/api/oauth/{name}/device/poll"}
    assert types["openai"]["login"] is None


def test_gemini_cli_onboards_once_and_wraps_code_assist_bodies(gateway: Gateway, admin: httpx.Client) -> None:
    """A new Google account has no Code Assist project: the first call onboards it
    (loadCodeAssist, then onboardUser until its operation is done); every call then names the
    project in Code Assist's wrapper, and its wrapped answers come back plain, whole or streamed."""
    chosen = PRESETS[4]
    with OAuthServer(PROFILES[chosen.type]) as server:
        created = admin.post("/api/providers", json={
            "id": "pv-gemini-cli", "type": "gemini-cli", "base_url": f"{server.url}{chosen.api_path}",
            "settings": {"oauth": {"authorize_url": f"{server.url}/authorize", "token_url": f"{server.url}/token"}}})
        assert created.status_code == 201, created.text
        try:
            connect(admin, server, "pv-gemini-cli", "gemini-cli")
            answer = wait_served(gateway, "gc/gemini-2.5-pro")
            assert answer.status_code == 200, answer.text
            assert answer.json()["choices"][0]["message"]["content"] == "Hello from Code Assist"
            assert answer.json()["usage"]["total_tokens"] == 7
            assert server.state.onboard_calls == 2 and server.state.onboarded
            sent = server.app.state.recorder.last(path=":generateContent").body
            assert sent["project"] == CODE_ASSIST_PROJECT and sent["model"] == "gemini-2.5-pro"
            assert sent["request"]["contents"][0]["parts"] == [{"text": "hi"}]
            loads = server.state.load_calls
            with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", timeout=30,
                              headers={"authorization": f"Bearer {gateway.api_key}"},
                              json={"model": "gc/gemini-2.5-pro", "stream": True,
                                    "messages": [{"role": "user", "content": "hi"}]}) as streamed:
                assert streamed.status_code == 200
                text = streamed.read().decode()
            assert "Hello from " in text and "Code Assist" in text and "data: [DONE]" in text
            assert server.state.onboard_calls == 2 and server.state.load_calls <= loads + 1  # kept
            # A Gemini client's own body goes through in the wrapper, its answer comes back plain.
            native = httpx.post(f"{gateway.url}/v1beta/models/gc/gemini-2.5-pro:generateContent", timeout=30,
                                headers={"x-goog-api-key": gateway.api_key},
                                json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                                      "generationConfig": {"temperature": 0.1}})
            assert native.status_code == 200, native.text
            assert native.json()["candidates"][0]["content"]["parts"] == [{"text": "Hello from Code Assist"}]
            sent = server.app.state.recorder.last(path=":generateContent").body
            assert sent["request"]["generationConfig"] == {"temperature": 0.1} and "model" not in sent["request"]
        finally:
            admin.delete("/api/providers/pv-gemini-cli")

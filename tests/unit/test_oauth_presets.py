"""Subscription presets (catalog.yaml `oauth`, `headers`) and the OAuth helpers they use."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import orjson
import pytest

from omniroute import catalog, oauth, targets
from omniroute.config.snapshot import ConfigSnapshot, Connection, Provider
from omniroute.secrets import Crypto, generate_master_key

PRESETS = {"claude-code": "cc", "codex": "cx", "github-copilot": "gh", "qwen-code": "qw"}


@pytest.mark.parametrize(("name", "prefix"), sorted(PRESETS.items()))
def test_each_preset_is_complete(name: str, prefix: str) -> None:
    kind = catalog.provider_type(name)
    assert kind is not None and kind.prefix == prefix and kind.auth == "oauth" and kind.headers
    preset = kind.oauth
    assert preset["flow"] in ("pkce", "device") and preset["client_id"] and preset["scopes"]
    assert preset["token_url"].startswith("https://")
    needed = ("authorize_url", "redirect_uri") if preset["flow"] == "pkce" else ("device_authorization_url",)
    assert all(str(preset[key]).startswith(("https://", "http://localhost")) for key in needed)


def test_prefixes_are_unique() -> None:
    prefixes = [k.prefix for k in catalog.PROVIDER_TYPES.values() if k.prefix]
    assert len(prefixes) == len(set(prefixes))


def test_a_preset_needs_its_token_endpoint_and_client() -> None:
    with pytest.raises(ValueError, match="token_url and client_id"):
        catalog._entry("x", {"family": "openai", "oauth": {"client_id": "c"}})


def test_provider_settings_override_the_preset_key_by_key() -> None:
    merged = oauth.client_config("qwen-code", {"oauth": {"token_url": "http://127.0.0.1:9/token"}})
    assert merged["token_url"] == "http://127.0.0.1:9/token"
    assert merged["client_id"] == "f0304373b74a44d2b584a3fb70ca9e56" and merged["device_pkce"] is True
    assert oauth.client_config("openai-compatible", {"oauth": {"client_id": "c"}}) == {"client_id": "c"}


def test_id_token_claim() -> None:
    claims = {"https://api.openai.com/auth": {"chatgpt_account_id": "acct-1"}}
    payload = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    answer = {"id_token": f"e30.{payload}.sig"}
    assert oauth.id_token_claim(answer, ["https://api.openai.com/auth", "chatgpt_account_id"]) == "acct-1"
    assert oauth.id_token_claim(answer, ["https://api.openai.com/auth", "missing"]) == ""
    assert oauth.id_token_claim({"id_token": "not-a-jwt"}, ["a"]) == ""
    assert oauth.id_token_claim({}, ["a"]) == ""


def test_token_lifetimes() -> None:
    crypto = Crypto(generate_master_key())
    # Without expires_in: an hour when it can be refreshed, until revoked when it cannot (GitHub).
    refreshable = oauth.from_token_answer({"access_token": "a", "refresh_token": "r"}, crypto)
    assert 3500 < refreshable.expires_at - time.time() <= 3600
    forever = oauth.from_token_answer({"access_token": "gho_a", "token_type": "bearer"}, crypto)
    assert forever.expires_at - time.time() > 365 * 86400 and forever.refresh_enc == ""


def test_api_calls_carry_the_type_headers_under_the_connection_own() -> None:
    connection = Connection(id="p:c", provider_id="p", name="c", api_key="tok", priority=0, enabled=True,
                            settings={"oauth": {}, "headers": {"chatgpt-account-id": "acct-1",
                                                               "originator": "mine"}})
    provider = Provider(id="p", type="codex", family="openai-responses",
                        base_url="https://chatgpt.com/backend-api/codex", models=(), enabled=True, settings={},
                        connections=(connection,))
    stored = ConfigSnapshot(providers={"p": provider}, settings={})
    target = targets.build(stored, provider, connection, "gpt-5", 30, None)
    assert dict(target.headers) == {"OpenAI-Beta": "responses=experimental", "originator": "mine",
                                    "chatgpt-account-id": "acct-1"}
    assert target.auth == "oauth"


def test_no_refresh_call_without_a_refresh_token() -> None:
    """GitHub's tokens come without a refresh token: after a 401 the connection is marked
    refresh_failed at once, and the token endpoint is not sent an empty refresh token."""
    from omniroute_router.selection.oauth_tokens import OAuthTokens

    crypto = Crypto(generate_master_key())
    tokens = object.__new__(OAuthTokens)
    tokens._crypto = crypto
    calls: list[dict[str, str]] = []
    saved: list[oauth.TokenState] = []

    async def token_call(token_url: str, form: dict[str, str], family: str,
                         token_format: str = "form") -> tuple[int, dict[str, Any]]:
        calls.append(form)
        return 400, {"error": "invalid_grant"}

    async def save(connection: Connection, state: oauth.TokenState) -> None:
        saved.append(state)

    tokens._token_call = token_call  # type: ignore[method-assign,assignment]
    tokens._save = save  # type: ignore[method-assign]
    connection = Connection(id="gh:me", provider_id="gh", name="me", api_key="gho_x", priority=0, enabled=True,
                            settings={"oauth": {"token_url": "https://github.com/login/oauth/access_token",
                                                "client_id": "c"}})
    current = oauth.TokenState(crypto.encrypt("gho_x"), "", time.time() + 3600, oauth.OK, "")
    state = asyncio.run(tokens._refresh(connection, current, "openai"))
    assert state.status == oauth.FAILED and calls == [] and saved == [state]

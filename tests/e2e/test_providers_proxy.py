"""Per-connection outbound proxies through the running stack: a connection whose `settings.proxy`
is a SOCKS5 URL (with a password) reaches the mock upstream only through the local SOCKS5 proxy,
for chat and for the non-chat operations; an unusable proxy URL fails the request instead of
silently going direct."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from omniroute.devstack.stack import free_port
from tests.mocks.server import MockServer
from tests.mocks.socks_proxy import SocksProxy
from tests.support import Gateway, wait_for

pytestmark = pytest.mark.xdist_group("gateway")


@pytest.fixture(scope="module")
def admin(gateway: Gateway) -> Iterator[httpx.Client]:
    session = gateway.admin_client()
    yield session


@pytest.fixture(scope="module")
def socks() -> Iterator[SocksProxy]:
    with SocksProxy("px-user", "px-s3cret") as proxy:
        yield proxy


def _provider(admin: httpx.Client, id_: str, base_url: str, proxy: str) -> None:
    created = admin.post("/api/providers", json={
        "id": id_, "type": "openai-compatible", "base_url": base_url, "models": ["gpt-4o-mini"],
        "settings": {"embedding_models": ["text-embedding-3-small"]},
        "connections": [{"name": "main", "api_key": f"sk-{id_}", "settings": {"proxy": proxy}}]})
    assert created.status_code == 201, created.text


def _answer(gateway: Gateway, model: str) -> openai.types.chat.ChatCompletion | None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.api_key, max_retries=0)
    try:
        return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "via socks"}])
    except openai.NotFoundError:  # the new provider has not reached this router yet
        return None


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
def test_chat_and_embeddings_go_through_a_socks5_proxy(gateway: Gateway, admin: httpx.Client,
                                                       mock_upstream: MockServer, socks: SocksProxy,
                                                       scheme: str) -> None:
    provider = f"px-{scheme}"
    _provider(admin, provider, f"{mock_upstream.url}/v1", socks.url(scheme))
    before = len(socks.tunnels)
    answer = wait_for(lambda: _answer(gateway, f"{provider}/gpt-4o-mini"), timeout=5)
    assert answer.choices[0].message.content
    assert mock_upstream.last(path="/v1/chat/completions").headers["authorization"] == f"Bearer sk-{provider}"
    # The tunnel was opened by the proxy, to the mock, with the connection's credentials.
    assert len(socks.tunnels) > before
    assert socks.tunnels[-1] == ("127.0.0.1", mock_upstream.port)
    assert socks.credentials[-1] == (b"px-user", b"px-s3cret")

    # Non-chat operations use the same pooled proxied client.
    embedded = httpx.post(f"{gateway.url}/v1/embeddings", headers={"authorization": f"Bearer {gateway.api_key}"},
                          json={"model": f"{provider}/text-embedding-3-small", "input": "hi"})
    assert embedded.status_code == 200, embedded.text
    assert mock_upstream.last(path="/v1/embeddings").headers["authorization"] == f"Bearer sk-{provider}"
    assert socks.tunnels[-1] == ("127.0.0.1", mock_upstream.port)


def test_an_unusable_proxy_url_fails_instead_of_going_direct(gateway: Gateway, admin: httpx.Client,
                                                             mock_upstream: MockServer) -> None:
    _provider(admin, "px-gopher", f"{mock_upstream.url}/v1", "gopher://127.0.0.1:70")
    mock_upstream.clear()

    def refused() -> openai.APIStatusError | None:
        try:
            _answer(gateway, "px-gopher/gpt-4o-mini")
        except openai.APIStatusError as exc:
            return exc
        return None

    error = wait_for(refused, timeout=5)
    assert error.status_code == 502, error
    assert not [r for r in mock_upstream.requests() if r.headers.get("authorization") == "Bearer sk-px-gopher"]



def test_the_admin_provider_test_and_model_listing_go_through_the_proxy(
        admin: httpx.Client, mock_upstream: MockServer) -> None:
    """The admin's calls to a provider (dashboard and API: test, live model list) are built by the
    router's target builder, so they take the provider's outbound proxy too."""
    # A proxy of its own: no pooled tunnel of another test can carry these calls.
    with SocksProxy("adm-user", "adm-s3cret") as own:
        _provider(admin, "px-admin", f"{mock_upstream.url}/v1", own.url("socks5"))
        tested = admin.post("/api/providers/px-admin/test", json={})
        assert tested.status_code == 200, tested.text
        assert tested.json()["ok"] is True, tested.json()
        assert own.tunnels and own.tunnels[-1] == ("127.0.0.1", mock_upstream.port)
        assert own.credentials[-1] == (b"adm-user", b"adm-s3cret")
        listed = admin.get("/api/providers/px-admin/models", params={"refresh": "true"})
        assert listed.status_code == 200, listed.text
        assert listed.json()["source"] == "provider" and listed.json()["models"]

    # A proxy that answers nobody: both calls fail rather than going direct to the upstream.
    _provider(admin, "px-admin-dead", f"{mock_upstream.url}/v1", f"socks5://127.0.0.1:{free_port()}")
    mock_upstream.clear()
    dead = admin.post("/api/providers/px-admin-dead/test", json={})
    assert dead.status_code == 200, dead.text
    assert dead.json()["ok"] is False, dead.json()
    unlisted = admin.get("/api/providers/px-admin-dead/models", params={"refresh": "true"})
    assert unlisted.status_code == 502, unlisted.text
    assert not [r for r in mock_upstream.requests() if r.headers.get("authorization") == "Bearer sk-px-admin-dead"]

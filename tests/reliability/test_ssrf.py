"""SSRF: provider base URLs aimed at link-local / metadata addresses are always refused, private
and loopback ones unless OMNIROUTE_ALLOW_PRIVATE_UPSTREAMS=true; the executor checks each call's
URL too, and never follows an upstream's redirect."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest
from pydantic import ValidationError

from omniroute import ssrf
from omniroute.config.spec import ProviderSpec
from tests.hosts import name_resolving_to, public_looking_name
from tests.mocks.faults import FaultServer
from tests.reliability.checks import assert_clean_openai_error, chat
from tests.reliability.conftest import API_KEY
from tests.support import Gateway, running_gateway

pytestmark = pytest.mark.xdist_group("reliability")

ALWAYS_REFUSED = ["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/v1",
                  "http://metadata.google.internal/computeMetadata/v1", "http://[::ffff:169.254.169.254]/",
                  "http://100.100.100.200/", "http://[fd00:ec2::254]/", "file:///etc/passwd",
                  "gopher://127.0.0.1/", "http:///nohost"]
PRIVATE = ["http://10.1.2.3/v1", "http://192.168.1.1:8080", "http://172.16.0.5", "http://127.0.0.1:11434",
           "http://localhost:8000/v1", "http://[::1]:9000", "http://0.0.0.0/", "http://100.64.0.1/",
           "http://[fc00::1]/"]
PUBLIC = ["https://api.openai.com/v1", "https://api.anthropic.com", "http://8.8.8.8/v1"]


@pytest.mark.parametrize("url", ALWAYS_REFUSED)
def test_metadata_and_link_local_are_refused_even_when_private_is_allowed(url: str) -> None:
    assert ssrf.refusal(url, allow_private=True)
    assert ssrf.refusal(url, allow_private=False)


@pytest.mark.parametrize("url", PRIVATE)
def test_private_addresses_need_the_setting(url: str) -> None:
    assert ssrf.refusal(url, allow_private=False)
    assert ssrf.refusal(url, allow_private=True) is None


@pytest.mark.parametrize("url", PUBLIC)
def test_public_addresses_pass(url: str) -> None:
    assert ssrf.refusal(url, allow_private=False) is None


def test_resolving_catches_a_name_that_points_inside() -> None:
    assert ssrf.refusal("http://localhost.localdomain:1/", allow_private=False, resolve=True) or \
        ssrf.refusal("http://ip6-localhost/", allow_private=False, resolve=True)


def test_the_config_spec_refuses_at_config_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ssrf.ALLOW_ENV, "false")
    for url in [*ALWAYS_REFUSED[:3], *PRIVATE[:3]]:
        with pytest.raises(ValidationError, match="base_url refused"):
            ProviderSpec(id="p", type="openai", base_url=url)
    assert ProviderSpec(id="p", type="openai", base_url=PUBLIC[0]).base_url == PUBLIC[0]
    monkeypatch.setenv(ssrf.ALLOW_ENV, "true")
    assert ProviderSpec(id="p", type="openai", base_url=PRIVATE[0]).base_url == PRIVATE[0]
    with pytest.raises(ValidationError):
        ProviderSpec(id="p", type="openai", base_url=ALWAYS_REFUSED[0])


def test_the_admin_api_refuses_a_metadata_base_url(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, timeout=10) as admin:
        login = admin.post("/api/auth/login", json={"password": gateway.admin_password})
        assert login.status_code == 200, login.text
        admin.headers["x-csrf-token"] = login.json()["csrfToken"]
        response = admin.post("/api/providers", json={
            "id": "evil", "type": "openai", "base_url": "http://169.254.169.254/latest",
            "connections": [{"name": "c", "api_key": "sk-evil"}]})
        assert response.status_code in (400, 422), response.text
        assert "refused" in response.text


def test_upstream_redirects_are_not_followed(gateway: Gateway, fault_upstream: FaultServer) -> None:
    with httpx.Client(base_url=gateway.url) as client:
        outcome = chat(client, API_KEY, "p-fault-redirect/fault-redirect")
    assert_clean_openai_error(outcome)
    assert fault_upstream.paths["/followed"] == 0


# --- a stack that does not allow private upstreams: the executor checks the address it connects to

@pytest.fixture(scope="module")
def name_resolving_inside() -> Iterator[str]:
    """A public-looking name that this machine resolves to 127.0.0.1 (tests/hosts.py): what a
    hostile DNS answer looks like to the executor."""
    with name_resolving_to(public_looking_name()) as name:
        yield name


@pytest.fixture(scope="module")
def strict_gateway(tmp_path_factory: pytest.TempPathFactory, fault_upstream: FaultServer,
                   name_resolving_inside: str) -> Iterator[Gateway]:
    port = fault_upstream.port
    # The name passes the config-time check, which judges a name by itself and does not resolve
    # it. One provider per test, so that the first refusal's cooldown does not hide the second.
    config = {"providers": [
        {"id": f"byname-{mode}", "type": "openai", "base_url": f"http://{name_resolving_inside}:{port}/v1",
         "models": ["ok"], "connections": [{"name": "main", "api_key": f"sk-byname-{mode}"}]}
        for mode in ("whole", "stream", "embeddings")],
        "keys": [{"name": "k", "key": API_KEY}]}
    with running_gateway(tmp_path_factory.mktemp("ssrf"), config, api_key=API_KEY,
                         extra_env={"OMNIROUTE_ALLOW_PRIVATE_UPSTREAMS": "false"}) as running:
        yield running


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_public_looking_name_that_resolves_inside_is_refused_before_connecting(
        strict_gateway: Gateway, fault_upstream: FaultServer, stream: bool) -> None:
    connections = fault_upstream.connections
    with httpx.Client(base_url=strict_gateway.url) as client:
        outcome = chat(client, API_KEY, f"byname-{'stream' if stream else 'whole'}/ok", stream=stream)
    assert_clean_openai_error(outcome, statuses=(502,))
    assert outcome.status == 502  # refused before the answer started: a status, not a frame
    message = orjson.loads(outcome.body)["error"]["message"]
    assert "the upstream address is refused: 127.0.0.1 is a loopback address" in message, message
    assert fault_upstream.connections == connections  # not even a TCP connection


def test_an_embeddings_call_to_a_name_that_resolves_inside_is_refused_before_connecting(
        strict_gateway: Gateway, fault_upstream: FaultServer) -> None:
    """The operations (embeddings, images, audio, model lists) call upstream through httpx: its
    direct client checks the connection's address the same way."""
    connections = fault_upstream.connections
    with httpx.Client(base_url=strict_gateway.url, timeout=30) as client:
        response = client.post("/v1/embeddings", headers={"authorization": f"Bearer {API_KEY}"},
                               json={"model": "byname-embeddings/ok", "input": "hello"})
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "upstream_address_refused", error
    assert "the upstream address is refused: 127.0.0.1 is a loopback address" in error["message"], error
    assert fault_upstream.connections == connections  # not even a TCP connection

"""The configuration contract through the admin API: changes reach every edge and router within a
second, without a restart; keys are shown once and stored as hashes; credentials are encrypted."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from omniroute.secrets import hash_api_key
from tests.mocks.server import MockServer
from tests.support import Gateway, wait_for

pytestmark = pytest.mark.xdist_group("gateway")


@pytest.fixture
def admin(gateway: Gateway) -> httpx.Client:
    return gateway.admin_client()  # management paths on the public port, with CSRF


def test_management_api_requires_login(gateway: Gateway) -> None:
    assert httpx.get(f"{gateway.url}/api/providers").status_code == 401
    wrong = httpx.post(f"{gateway.url}/api/auth/login", json={"password": "nope"})
    assert wrong.status_code == 401


def test_provider_and_key_created_through_the_api_work_within_a_second(
        gateway: Gateway, admin: httpx.Client, mock_upstream: MockServer) -> None:
    created = admin.post("/api/providers", json={
        "id": "apiopenai", "type": "openai-compatible", "base_url": f"{mock_upstream.url}/v1",
        "models": ["gpt-4o"], "connections": [{"name": "main", "api_key": "sk-upstream-secret-999"}]})
    assert created.status_code == 201, created.text
    assert created.json()["connections"][0]["api_key"] != "sk-upstream-secret-999"  # masked
    stored = gateway.rows("SELECT api_key_enc FROM connections WHERE provider_id = 'apiopenai'")
    assert stored and "sk-upstream-secret-999" not in stored[0][0]  # encrypted at rest

    key = admin.post("/api/keys", json={"name": "from-api"})
    assert key.status_code == 201
    clear = key.json()["key"]
    assert clear.startswith("sk-omni-")
    listed = admin.get("/api/keys").json()["keys"]
    assert clear not in str(listed)  # shown once, never listed
    assert gateway.rows("SELECT key_hash FROM api_keys WHERE name = 'from-api'")[0][0] == hash_api_key(clear)

    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=clear, max_retries=0)
    started = time.monotonic()

    def answered() -> bool:
        try:
            client.chat.completions.create(model="apiopenai/gpt-4o",
                                           messages=[{"role": "user", "content": "new provider"}])
            return True
        except (openai.AuthenticationError, openai.NotFoundError):
            return False

    wait_for(answered, timeout=5)
    assert time.monotonic() - started < 1.0
    assert mock_upstream.last(path="/v1/chat/completions").headers["authorization"] == \
        "Bearer sk-upstream-secret-999"

    deleted = admin.delete(f"/api/keys/{key.json()['id']}")
    assert deleted.status_code == 200
    started = time.monotonic()

    def refused() -> bool:
        try:
            client.models.list()
            return False
        except openai.AuthenticationError:
            return True

    wait_for(refused, timeout=5)
    assert time.monotonic() - started < 1.0
    assert admin.delete("/api/providers/apiopenai").status_code == 200


def test_provider_crud_and_validation(admin: httpx.Client) -> None:
    spec = {"id": "crud1", "type": "openai", "base_url": "http://127.0.0.1:1/v1",
            "connections": [{"name": "a", "api_key": "sk-aaaaaaaaaaaaaaaa"}]}
    assert admin.post("/api/providers", json=spec).status_code == 201
    assert admin.post("/api/providers", json=spec).status_code == 409
    assert admin.get("/api/providers/crud1").json()["type"] == "openai"
    spec["connections"] = [{"name": "a"}, {"name": "b", "api_key": "sk-bbbbbbbbbbbbbbbb"}]
    updated = admin.put("/api/providers/crud1", json=spec).json()
    assert [c["name"] for c in updated["connections"]] == ["a", "b"]
    assert updated["connections"][0]["api_key"]  # an update without api_key keeps the stored one
    bad = admin.post("/api/providers", json={"id": "x", "type": "nonsense"})
    assert bad.status_code == 400 and "unknown provider type" in bad.text
    assert admin.delete("/api/providers/crud1").status_code == 200
    assert admin.get("/api/providers/crud1").status_code == 404

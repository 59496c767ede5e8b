"""Cloud sync between two running stacks, each with its own database and master key: a pull
brings providers (credentials re-encrypted), key hashes, combos, aliases and routing settings,
and B then serves A's key and provider; a push after a concurrent edit on A is refused (ETag);
nothing secret crosses the wire in clear."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from omniroute.secrets import hash_api_key
from tests.mocks.server import MockServer, start_mock_server
from tests.support import Gateway, running_gateway, wait_for

KEY_A = "sk-omni-sync-a-0123456789abcdef"
KEY_B = "sk-omni-sync-b-0123456789abcdef"
UPSTREAM_SECRET = "sk-upstream-sync-secret-A1"


@dataclass
class Pair:
    a: Gateway
    b: Gateway
    mock: MockServer


def _admin(gateway: Gateway) -> httpx.Client:
    login = httpx.post(f"{gateway.url}/api/auth/login", json={"password": gateway.admin_password})
    assert login.status_code == 200, login.text
    return httpx.Client(base_url=gateway.url, timeout=30,
                        headers={"authorization": f"Bearer {login.json()['token']}"})


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with start_mock_server() as mock, contextlib.ExitStack() as stack:
        config_a = {
            "providers": [{"id": "shared", "type": "openai", "base_url": f"{mock.url}/v1",
                           "models": ["mock-echo"],
                           "connections": [{"name": "main", "api_key": UPSTREAM_SECRET}]}],
            "keys": [{"name": "a-key", "key": KEY_A}],
            "aliases": {"fast": "shared/mock-echo"},
            "combos": [{"name": "team", "models": ["fast", "shared/mock-echo"]}]}
        config_b = {
            "providers": [{"id": "only-b", "type": "openai", "base_url": f"{mock.url}/v1",
                           "models": ["mock-text"], "connections": [{"name": "b", "api_key": "sk-b-1"}]}],
            "keys": [{"name": "b-key", "key": KEY_B}]}
        a = stack.enter_context(running_gateway(tmp_path_factory.mktemp("sync-a"), config_a, api_key=KEY_A))
        b = stack.enter_context(running_gateway(tmp_path_factory.mktemp("sync-b"), config_b, api_key=KEY_B))
        assert a.settings.master_key != b.settings.master_key
        yield Pair(a, b, mock)


def test_sync_between_two_running_stacks(pair: Pair) -> None:
    # One scenario in order (each phase builds on the previous): the stacks are too costly to
    # start per test, and test order across xdist workers is not guaranteed.
    _pull_brings_the_whole_configuration_and_b_serves_it(pair)
    _push_detects_a_concurrent_edit_and_pull_then_push_wins(pair)
    _the_peer_protocol_needs_if_match_and_a_valid_document(pair)


def _answer(gateway: Gateway, key: str, model: str) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/chat/completions", timeout=30,
                      headers={"authorization": f"Bearer {key}"},
                      json={"model": model, "messages": [{"role": "user", "content": "synced hello"}]})


def _pull_brings_the_whole_configuration_and_b_serves_it(pair: Pair) -> None:
    with _admin(pair.a) as a, _admin(pair.b) as b:
        assert b.post("/api/sync/cloud", json={"action": "pull"}).status_code == 409   # no remote yet
        created = a.post("/api/sync/initialize")
        assert created.status_code == 201, created.text
        token = created.json()["token"]
        assert a.post("/api/sync/initialize").status_code == 409
        assert a.get("/api/sync/cloud").json()["serving"]["enabled"] is True

        # The wire: no clear credential, keys as hashes only; the token is required.
        wire = httpx.get(f"{pair.a.url}/api/cloud/config", headers={"authorization": f"Bearer {token}"})
        assert wire.status_code == 200 and wire.headers["etag"]
        assert UPSTREAM_SECRET not in wire.text and KEY_A not in wire.text
        assert hash_api_key(KEY_A) in wire.text
        assert httpx.get(f"{pair.a.url}/api/cloud/config").status_code == 401
        assert httpx.get(f"{pair.a.url}/api/cloud/config",
                         headers={"authorization": "Bearer sk-sync-wrong"}).status_code == 401
        cached = httpx.get(f"{pair.a.url}/api/cloud/config", headers={
            "authorization": f"Bearer {token}", "if-none-match": wire.headers["etag"]})
        assert cached.status_code == 304

        assert b.put("/api/sync/cloud", json={"url": "ftp://x", "token": token}).status_code == 400
        assert b.put("/api/sync/cloud", json={"url": pair.a.url, "token": token}).status_code == 200
        pulled = b.post("/api/sync/cloud", json={"action": "pull"})
        assert pulled.status_code == 200, pulled.text
        assert pulled.json()["remoteEtag"] == wire.headers["etag"]
        assert pulled.json()["rows"]["providers"] == 1 and pulled.json()["rows"]["api_keys"] == 1

        providers = b.get("/api/providers").json()["providers"]
        assert [p["id"] for p in providers] == ["shared"]
        assert b.get("/api/models/alias").json()["aliases"] == {"fast": "shared/mock-echo"}
        assert [c["name"] for c in b.get("/api/combos").json()["combos"]] == ["team"]
        status = b.get("/api/sync/cloud").json()
        assert status["remote"]["lastPullAt"] and status["local"]["changedSinceSync"] is False

    # B now serves A's key with A's provider: the credential survived the re-encryption.
    def served() -> httpx.Response | None:
        answer = _answer(pair.b, KEY_A, "team")
        return answer if answer.status_code == 200 else None

    answer = wait_for(served, 10)
    assert answer.json()["choices"][0]["message"]["content"] == "synced hello"
    assert pair.mock.last(family="openai").headers["authorization"] == f"Bearer {UPSTREAM_SECRET}"
    assert _answer(pair.b, KEY_B, "only-b/mock-text").status_code == 401   # B's own key was replaced


def _push_detects_a_concurrent_edit_and_pull_then_push_wins(pair: Pair) -> None:
    with _admin(pair.a) as a, _admin(pair.b) as b:
        assert b.post("/api/models/alias", json={"alias": "from-b", "model": "shared/mock-echo"}).is_success
        status = b.get("/api/sync/cloud").json()
        assert status["local"]["changedSinceSync"] is True, status
        pushed = b.post("/api/sync/cloud", json={"action": "push"})
        assert pushed.status_code == 200, pushed.text
        assert "from-b" in a.get("/api/models/alias").json()["aliases"]

        # A concurrent edit on A, then B pushes on top of an ETag that is no longer current.
        assert a.post("/api/models/alias", json={"alias": "from-a", "model": "shared/mock-echo"}).is_success
        assert b.post("/api/models/alias", json={"alias": "late-b", "model": "shared/mock-echo"}).is_success
        refused = b.post("/api/sync/cloud", json={"action": "push"})
        assert refused.status_code == 409 and "pull first" in refused.json()["error"]["message"]
        assert "late-b" not in a.get("/api/models/alias").json()["aliases"]

        assert b.post("/api/sync/cloud", json={"action": "pull"}).status_code == 200
        aliases = b.get("/api/models/alias").json()["aliases"]
        assert "from-a" in aliases and "late-b" not in aliases   # a pull takes the remote's truth
        assert b.post("/api/models/alias", json={"alias": "late-b", "model": "shared/mock-echo"}).is_success
        assert b.post("/api/sync/cloud", json={"action": "push"}).status_code == 200
        assert {"from-a", "from-b", "late-b"} <= set(a.get("/api/models/alias").json()["aliases"])

        assert a.post("/api/models/alias", json={"alias": "a-only", "model": "shared/mock-echo"}).is_success
        forced = b.post("/api/sync/cloud", json={"action": "push", "force": True})
        assert forced.status_code == 200
        assert "a-only" not in a.get("/api/models/alias").json()["aliases"]

        b_log = b.get("/api/compliance/audit-log", params={"action": "sync.*"}).json()["entries"]
        assert {e["action"] for e in b_log} == {"sync.remote", "sync.pull", "sync.push"}
        a_log = a.get("/api/compliance/audit-log", params={"action": "sync.receive"}).json()
        assert a_log["total"] == 3 and a_log["entries"][0]["actor"] == "sync-peer"


def _the_peer_protocol_needs_if_match_and_a_valid_document(pair: Pair) -> None:
    with _admin(pair.a) as a:
        token = a.post("/api/sync/initialize", json={"rotate": True}).json()["token"]
    auth = {"authorization": f"Bearer {token}"}
    current = httpx.get(f"{pair.a.url}/api/cloud/config", headers=auth)
    url = f"{pair.a.url}/api/cloud/config"
    assert httpx.put(url, headers=auth, content=current.content).status_code == 428
    stale = httpx.put(url, headers={**auth, "if-match": '"stale"'}, content=current.content)
    assert stale.status_code == 412 and stale.headers["etag"] == current.headers["etag"]
    assert httpx.put(url, headers={**auth, "if-match": "*"}, content=b"{nope").status_code == 400
    tampered = current.json()
    tampered["tables"]["connections"][0]["api_key_enc"] = "gAAAAA-not-sealed-with-this-token"
    answer = httpx.put(url, headers={**auth, "if-match": current.headers["etag"]}, json=tampered)
    assert answer.status_code == 400 and "sync token" in answer.json()["error"]["message"]
    same = httpx.put(url, headers={**auth, "if-match": current.headers["etag"]}, content=current.content)
    assert same.status_code == 200 and same.headers["etag"]
    # The old token stopped working when it was rotated; B must be given the new one.
    with _admin(pair.b) as b:
        assert b.post("/api/sync/cloud", json={"action": "pull"}).status_code == 502

"""Several routers share one semantic cache through a Qdrant server (QDRANT_URL): an answer that
router 1 stored is served by router 2; a router whose server is unreachable answers without the
cache and says so (`X-OmniRoute-Semantic-Cache: OFF`).

The server: no Qdrant binary is in the registries this project reaches; `bsdb-search`
(benostreamdb-search on PyPI, a static binary in its wheel) serves Qdrant's REST API, with an API
key. It keeps collections in `schema.name` namespaces and writes only to schemas its storage
policy grants, hence QDRANT_COLLECTION_PREFIX="semcache." and the policy file below."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from omniroute.devstack.backing import wait_listening
from omniroute.devstack.stack import Stack, free_port
from tests.e2e.routing_stack import RoutingStack, routing_stack, upstream_calls
from tests.mocks.server import MockServer

pytestmark = pytest.mark.xdist_group("semantic-shared-qdrant")

KEY = "sk-omni-shared-semantic-000000"
QDRANT_API_KEY = "qdrant-test-key-0123456789"
MODEL = "myopenai/gpt-4o-mini"


@contextlib.contextmanager
def qdrant_compatible_server(tmp: Path) -> Iterator[str]:
    binary = shutil.which("bsdb-search", path=str(Path(sys.executable).parent)) or shutil.which("bsdb-search")
    assert binary, "bsdb-search (benostreamdb-search in requirements-dev.txt) is not installed"
    store = tmp / "vectors"
    store.mkdir()
    policy = {"policy_version": "1.0", "readwrite_schemas": ["semcache"], "readonly_schemas": []}
    (store / ".benostream-policy.json").write_text(json.dumps(policy))
    port = free_port()
    env = {**os.environ, "BSDB_SEARCH_BIND": "127.0.0.1", "BSDB_SEARCH_PORT": str(free_port()),
           "BSDB_QDRANT_PORT": str(port), "BSDB_SEARCH_STORAGE_URI": store.as_uri(),
           "BSDB_SEARCH_DEVICE": "cpu", "BSDB_SEARCH_PRELOAD": "0", "BSDB_SEARCH_REQUIRE_POLICY": "1",
           "BSDB_API_KEY": QDRANT_API_KEY, "BSDB_AUTH_REQUIRED": "true"}
    with open(tmp / "bsdb-search.log", "ab") as log:
        process = subprocess.Popen([binary], env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_listening("127.0.0.1", port, "bsdb-search", 30, process)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(10)


@pytest.fixture(scope="module")
def stack(mock_upstream: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoutingStack]:
    tmp = tmp_path_factory.mktemp("shared-qdrant")
    config = {
        "providers": [{"id": "myopenai", "type": "openai", "base_url": f"{mock_upstream.url}/v1",
                       "models": ["gpt-4o-mini", "mock-embedding"],
                       "connections": [{"name": "primary", "api_key": "sk-upstream-1"}]}],
        "keys": [{"name": "shared", "key": KEY}],
        "routing": {"cache": {"semantic_keys": ["shared"], "semantic_model": "myopenai/mock-embedding"}},
    }
    with qdrant_compatible_server(tmp) as url:
        env = {"QDRANT_URL": url, "QDRANT_API_KEY": QDRANT_API_KEY, "QDRANT_COLLECTION_PREFIX": "semcache."}
        with routing_stack(tmp, config, ["shared"], replicas=2, extra_env=env) as running:
            yield running


@contextlib.contextmanager
def router_with(stack: RoutingStack, env: dict[str, str]) -> Iterator[RoutingStack]:
    """One more router replica of the stack, with `env` on top of the stack's."""
    gateway = stack.gateway
    extra = Stack(ports=dataclasses.replace(gateway.stack.ports), env=gateway.stack.env, log_dir=gateway.log_dir)
    extra.ports.router = free_port()
    try:
        service = extra.start_service("router-other-qdrant", "omniroute_router", env=env)
        wait_listening("127.0.0.1", extra.ports.router, "router-other-qdrant", 60, service.process)
        yield RoutingStack(gateway=gateway, router_addrs=[f"127.0.0.1:{extra.ports.router}"],
                           key_ids=stack.key_ids)
    finally:
        extra.stop()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_an_answer_stored_by_one_router_is_served_by_the_other(stack: RoutingStack, mock_upstream: MockServer,
                                                                   stream: bool) -> None:
    marker = uuid.uuid4().hex
    prompt = f"what does a shared semantic cache share? {marker}"
    first = await stack.chat(0, MODEL, prompt)
    assert first.error is None and first.headers["x-omniroute-semantic-cache"] == "MISS"
    second = await stack.chat(1, MODEL, prompt, stream=stream)
    assert second.error is None, second.error
    assert second.headers["x-omniroute-semantic-cache"] == "HIT"
    assert float(second.headers["x-omniroute-semantic-similarity"]) > 0.999
    assert second.text == first.text
    assert len(upstream_calls(mock_upstream, marker)) == 1, "router 2 answered from router 1's entry"


async def test_clearing_the_cache_clears_it_for_every_router(stack: RoutingStack) -> None:
    prompt = f"will this be forgotten? {uuid.uuid4().hex}"
    assert (await stack.chat(0, MODEL, prompt)).headers["x-omniroute-semantic-cache"] == "MISS"
    assert (await stack.chat(1, MODEL, prompt)).headers["x-omniroute-semantic-cache"] == "HIT"
    gateway = stack.gateway
    async with httpx.AsyncClient(base_url=gateway.url) as admin:
        login = await admin.post("/api/auth/login", json={"password": gateway.admin_password})
        token = login.json()["token"]
        cleared = await admin.delete("/api/cache", headers={"authorization": f"Bearer {token}"})
        assert cleared.status_code == 200 and cleared.json()["semanticCleared"] >= 1
    assert (await stack.chat(1, MODEL, prompt)).headers["x-omniroute-semantic-cache"] == "MISS"
    assert (await stack.chat(0, MODEL, prompt)).headers["x-omniroute-semantic-cache"] == "HIT"


async def test_a_router_whose_server_is_unreachable_answers_without_the_cache(stack: RoutingStack,
                                                                              mock_upstream: MockServer) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with router_with(stack, {"QDRANT_URL": closed}) as lonely:
        marker = uuid.uuid4().hex
        for _ in range(2):
            answer = await lonely.chat(0, MODEL, f"is anyone there? {marker}")
            assert answer.error is None, answer.error
            assert answer.headers["x-omniroute-semantic-cache"] == "OFF"
        assert len(upstream_calls(mock_upstream, marker)) == 2
        log = (stack.gateway.log_dir / "router-other-qdrant.log").read_text()
        assert "semantic cache off in this router" in log and closed in log


async def test_a_wrong_api_key_is_refused_by_the_server(stack: RoutingStack, mock_upstream: MockServer) -> None:
    """The key the other routers use is really checked: without it, this router has no cache."""
    env = stack.gateway.stack.env
    with router_with(stack, {"QDRANT_URL": env["QDRANT_URL"], "QDRANT_API_KEY": "wrong-key-7f3a"}) as refused:
        answer = await refused.chat(0, MODEL, f"may I? {uuid.uuid4().hex}")
        assert answer.error is None and answer.headers["x-omniroute-semantic-cache"] == "OFF"
        log = (stack.gateway.log_dir / "router-other-qdrant.log").read_text()
        assert "semantic cache off in this router" in log and "wrong-key-7f3a" not in log, "the key is never logged"

"""Fixing a wrong base_url heals the connection on every router replica at once (three
replicas, one Redis): the mark one replica earned keeps the others away from the connection,
and the admin's save clears it for all of them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.routing_stack import RoutingStack, routing_stack, upstream_calls
from tests.mocks.server import MockServer

pytestmark = pytest.mark.xdist_group("config-heals-replicas")

KEY = "sk-omni-heals-0000000000000000"


@pytest.fixture(scope="module")
def stack(mock_upstream: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoutingStack]:
    config = {
        "providers": [{"id": "misset", "type": "openai-compatible", "base_url": f"{mock_upstream.url}/wrong/v1",
                       "models": ["mock-text"], "connections": [{"name": "main", "api_key": "sk-misset"}]}],
        "keys": [{"name": "heals", "key": KEY}],
    }
    with routing_stack(tmp_path_factory.mktemp("heals"), config, ["heals"]) as running:
        yield running


async def test_the_fix_reaches_every_replica_with_the_connection_healed(
        stack: RoutingStack, mock_upstream: MockServer) -> None:
    marker = uuid.uuid4().hex
    failed = await stack.chat(0, "misset/mock-text", f"wrong {marker}")
    assert failed.error is not None and failed.error.code == "upstream_not_found", failed.error
    assert "check the connection's base_url" in failed.error.message
    # The other replicas see the connection cooled down: refused without calling the upstream.
    for replica in (1, 2):
        refused = await stack.chat(replica, "misset/mock-text", f"wrong {marker}")
        assert refused.error is not None and refused.error.code != "upstream_not_found", refused.error

    admin = stack.gateway.admin_client()
    fixed = admin.put("/api/providers/misset", json={
        "id": "misset", "type": "openai-compatible", "base_url": f"{mock_upstream.url}/v1",
        "models": ["mock-text", "mock-echo"], "connections": [{"name": "main"}]})
    admin.close()
    assert fixed.status_code == 200, fixed.text

    async def all_reloaded() -> None:
        while not all(["misset/mock-echo" in await stack.models(i) for i in range(3)]):
            await asyncio.sleep(0.02)
    await asyncio.wait_for(all_reloaded(), timeout=5)
    for replica in range(3):
        answer = await stack.chat(replica, "misset/mock-text", f"fixed {marker}")
        assert answer.error is None, answer.error
    assert len(upstream_calls(mock_upstream, f"fixed {marker}")) == 3

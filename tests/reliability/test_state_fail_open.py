"""Redis away with OMNIROUTE_STATE_FAIL_OPEN=true: the gateway keeps serving without limits,
caches and breakers, every answer says it is degraded, and the usage still reaches Postgres once
Redis is back (accounting keeps the events in JetStream meanwhile). The default, failing closed,
is proven in test_process_faults.py."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.mocks.server import MockServer, start_mock_server
from tests.reliability.cluster import Cluster, running_cluster

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("reliability-fail-open")]

KEY = "sk-omni-fail-open-0000000000001"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, MockServer]]:
    with start_mock_server() as mock:
        config = {"providers": [{"id": "good", "type": "openai", "base_url": f"{mock.url}/v1",
                                 "models": ["mock-text"], "connections": [{"name": "main", "api_key": "sk-up"}]}],
                  "keys": [{"name": "open", "key": KEY, "limits": {"rpm": 1000}}]}
        with running_cluster(tmp_path_factory.mktemp("fail-open"), config,
                             {"OMNIROUTE_ALLOW_PRIVATE_UPSTREAMS": "true",
                              "OMNIROUTE_STATE_FAIL_OPEN": "true"}) as running:
            yield running, mock


def test_serves_without_redis_and_says_so(cluster: tuple[Cluster, MockServer]) -> None:
    running, _ = cluster
    client = openai.OpenAI(base_url=f"{running.edge_urls[0]}/v1", api_key=KEY, max_retries=0)
    healthy = client.chat.completions.with_raw_response.create(
        model="good/mock-text", messages=[{"role": "user", "content": "before"}])
    assert "x-omniroute-degraded" not in healthy.headers
    running.backing.stop("redis")
    try:
        ids = []
        for stream in (False, True):
            response = httpx.post(f"{running.edge_urls[0]}/v1/chat/completions", timeout=30,
                                  headers={"authorization": f"Bearer {KEY}"},
                                  json={"model": "good/mock-text", "stream": stream,
                                        "messages": [{"role": "user", "content": "no redis"}]})
            assert response.status_code == 200, response.text
            assert response.headers["x-omniroute-degraded"] == "state-store-unavailable"
            assert "Hello" in response.text and "scripted" in response.text
            ids.append(response.headers["x-omniroute-request-id"])
        wrong = httpx.post(f"{running.edge_urls[0]}/v1/chat/completions", timeout=30,
                           headers={"authorization": "Bearer sk-omni-not-a-key-000000"},
                           json={"model": "good/mock-text", "messages": [{"role": "user", "content": "x"}]})
        assert wrong.status_code == 401  # keys are still checked: they live in memory
    finally:
        running.backing.start("redis")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = running.rows("SELECT request_id FROM usage WHERE request_id = ANY(%s)", (ids,))
        if len(rows) == len(ids):
            break
        time.sleep(0.5)
    assert sorted(r[0] for r in rows) == sorted(ids)

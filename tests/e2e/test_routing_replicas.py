"""Three router replicas (separate processes) sharing one Redis behave as one router: a key's RPM,
a connection's breaker, idempotent duplicates, cache single-flight and round-robin counters are
the same whichever replica a request lands on."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.routing_stack import RoutingStack, routing_stack, upstream_calls
from tests.mocks.server import MockServer

pytestmark = pytest.mark.xdist_group("routing-replicas")

LIMITED_KEY = "sk-omni-limited-000000000000"


@pytest.fixture(scope="module")
def stack(mock_upstream: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoutingStack]:
    base = f"{mock_upstream.url}/v1"
    config = {
        "providers": [
            {"id": "myopenai", "type": "openai", "base_url": base,
             "models": ["mock-text", "mock-echo"],
             "connections": [{"name": "primary", "api_key": "sk-upstream-1"}]},
            {"id": "flaky", "type": "openai-compatible", "base_url": base, "models": ["mock-500"],
             "settings": {"resilience_profile": "strict"},
             "connections": [{"name": "only", "api_key": "sk-upstream-2"}]},
        ],
        "keys": [{"name": "replicas", "key": "sk-omni-replicas-00000000000"},
                 {"name": "limited", "key": LIMITED_KEY, "limits": {"rpm": 60}},
                 {"name": "tiny", "key": "sk-omni-tiny-0000000000000000", "limits": {"rpm": 2}}],
        "combos": [{"name": "rr", "strategy": "round-robin",
                    "models": ["myopenai/mock-text", "myopenai/mock-echo"]}],
        "routing": {"resilience": {
            "profiles": {"default": {}, "strict": {"failure_threshold": 2, "reset_timeout_s": 60}},
            "cooldown": {"base_s": 0.001}}},
    }
    with routing_stack(tmp_path_factory.mktemp("replicas"), config, ["replicas"]) as running:
        yield running


async def test_a_60_rpm_key_admits_exactly_60_across_three_replicas(stack: RoutingStack) -> None:
    marker = uuid.uuid4().hex
    answers = await asyncio.gather(*(stack.chat(i % 3, "myopenai/mock-text", f"rpm {marker}", key="limited")
                                     for i in range(90)))
    admitted = [a for a in answers if a.error is None]
    refused = [a for a in answers if a.error is not None]
    assert len(admitted) == 60 and len(refused) == 30
    assert {a.error.status for a in refused if a.error} == {429}
    sample = refused[0].error
    assert sample is not None and sample.retry_after_s > 0
    assert sample.headers["x-ratelimit-limit-requests"] == "60"
    assert sample.headers["x-ratelimit-remaining-requests"] == "0"
    assert admitted[0].headers["x-ratelimit-limit-requests"] == "60"


def test_over_limit_is_429_in_the_callers_format_with_headers(stack: RoutingStack) -> None:
    url = f"{stack.gateway.url}/v1/chat/completions"
    auth = {"authorization": "Bearer sk-omni-tiny-0000000000000000"}
    body = {"model": "myopenai/mock-text", "messages": [{"role": "user", "content": "tiny"}]}
    statuses = [httpx.post(url, headers=auth, json=body, timeout=30) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    refused = statuses[2]
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"


async def test_a_breaker_opened_through_one_replica_rejects_through_the_others(
        stack: RoutingStack, mock_upstream: MockServer) -> None:
    marker = uuid.uuid4().hex
    for _ in range(2):  # the strict profile opens after two consecutive failures
        failed = await stack.chat(0, "flaky/mock-500", f"break {marker}")
        assert failed.error is not None and failed.error.status == 500
        await asyncio.sleep(0.01)  # past the (tiny) cooldown: the breaker is what must stop it
    assert len(upstream_calls(mock_upstream, marker)) == 2
    for replica in (1, 2):
        refused = await stack.chat(replica, "flaky/mock-500", f"break {marker}")
        assert refused.error is not None and refused.error.code == "no_available_account"
        assert "circuit open" in refused.error.message and refused.error.retry_after_s > 0
    assert len(upstream_calls(mock_upstream, marker)) == 2  # no replica called upstream again


async def test_idempotent_duplicates_on_different_replicas_reach_upstream_once(
        stack: RoutingStack, mock_upstream: MockServer) -> None:
    marker = uuid.uuid4().hex
    options = {"idempotency_key": f"idem-{marker}"}
    first = asyncio.create_task(stack.chat(0, "myopenai/mock-text", f"idem {marker}", options=options))
    await asyncio.sleep(0.05)
    others = await asyncio.gather(*(stack.chat(r, "myopenai/mock-text", f"idem {marker}", options=options)
                                    for r in (1, 2)))
    answers = [await first, *others]
    assert all(a.error is None for a in answers)
    assert len(upstream_calls(mock_upstream, marker)) == 1
    assert len({a.response["id"] for a in answers if a.response}) == 1  # the same answer
    assert sorted(a.headers.get("x-omniroute-idempotent", "") for a in answers) == ["", "true", "true"]
    again = await stack.chat(2, "myopenai/mock-text", f"idem {marker}", options=options)
    assert again.headers["x-omniroute-idempotent"] == "true"
    assert len(upstream_calls(mock_upstream, marker)) == 1


async def test_concurrent_duplicates_wait_for_a_slow_first_answer(
        stack: RoutingStack, mock_upstream: MockServer) -> None:
    marker = uuid.uuid4().hex
    options = {"idempotency_key": f"slow-{marker}"}
    answers = await asyncio.gather(*(stack.chat(r, "myopenai/mock-slow-400", f"slow {marker}",
                                                options=options) for r in range(3)))
    assert all(a.error is None for a in answers)
    assert len(upstream_calls(mock_upstream, marker)) == 1


async def test_two_concurrent_identical_cacheable_requests_make_one_upstream_call(
        stack: RoutingStack, mock_upstream: MockServer) -> None:
    marker = uuid.uuid4().hex
    answers = await asyncio.gather(*(stack.chat(r, "myopenai/mock-slow-300", f"cache {marker}", temperature=0)
                                     for r in (0, 1)))
    assert all(a.error is None for a in answers)
    assert len(upstream_calls(mock_upstream, marker)) == 1
    assert sorted(a.headers["x-omniroute-cache"] for a in answers) == ["HIT", "MISS"]
    assert answers[0].text == answers[1].text != ""
    # The cached answer is served as a stream too, and bypassed on request.
    streamed = await stack.chat(2, "myopenai/mock-slow-300", f"cache {marker}", temperature=0, stream=True)
    assert streamed.headers["x-omniroute-cache"] == "HIT" and streamed.text == answers[0].text
    bypass = await stack.chat(2, "myopenai/mock-slow-300", f"cache {marker}", temperature=0,
                              options={"no_cache": "true"})
    assert "x-omniroute-cache" not in bypass.headers
    assert len(upstream_calls(mock_upstream, marker)) == 2


async def test_round_robin_is_shared_by_the_replicas(stack: RoutingStack, mock_upstream: MockServer) -> None:
    marker = uuid.uuid4().hex
    for i in range(6):
        answer = await stack.chat(i % 3, "rr", f"rr {marker}")
        assert answer.error is None
    models = [r.body["model"] for r in upstream_calls(mock_upstream, marker)]
    assert sorted(models) == ["mock-echo"] * 3 + ["mock-text"] * 3
    assert all(a != b for a, b in itertools.pairwise(models))  # strictly alternating

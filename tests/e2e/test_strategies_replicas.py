"""Each data-driven combo strategy, end to end with two router replicas and scripted upstreams:
which upstream answers is asserted, not just that something did.

- latency-optimized: by the latency the analytics service records (a mock delay per account);
- cost-optimized: by the pricing table that /api/pricing edits (an edit reorders every replica);
- fill-first: stays on one step until it fails or hits its rpm, then on the NEXT step, where
  lkgp (same steps, same failures) goes back to the first;
- the others (priority, round-robin, least-used, weighted, random, p2c): the order each gives
  with the replicas taking turns (their counters are shared)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator

import pytest

from omniroute.analytics_store import LatencyStore
from omniroute.shared_state import connect
from tests.e2e.routing_stack import RoutingStack, routing_stack
from tests.mocks.common import SCRIPTED
from tests.mocks.server import MockServer

pytestmark = pytest.mark.xdist_group("strategies-replicas")

REPLICAS = 2
OTHERS = ("priority", "round-robin", "least-used", "weighted", "random", "p2c")


@pytest.fixture(scope="module")
def stack(mock_upstream: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoutingStack]:
    base = f"{mock_upstream.url}/v1"

    def provider(pid: str, kind: str = "openai-compatible", **connection: object) -> dict[str, object]:
        return {"id": pid, "type": kind, "base_url": base, "models": ["mock-text"],
                "connections": [{"name": "main", "api_key": f"sk-{pid}", **connection}]}

    config = {
        "providers": [
            provider("slow", settings={"headers": {"x-mock-delay-ms": "300"}}),
            provider("fast"),
            provider("listprice", kind="openai"),
            provider("compat"),
            provider("a"), provider("b"), provider("c", settings={"rpm": 3}),
            provider("d"), provider("e"), provider("f"),
        ],
        "keys": [{"name": "strategies", "key": "sk-omni-strategies-00000000"}],
        "combos": [
            {"name": "quick", "strategy": "latency-optimized", "models": ["slow/mock-text", "fast/mock-text"]},
            {"name": "cheap", "strategy": "cost-optimized",
             "models": ["listprice/mock-text", "compat/mock-text"]},
            {"name": "ff", "strategy": "fill-first", "models": ["a/mock-text", "b/mock-text", "c/mock-text"]},
            {"name": "lk", "strategy": "lkgp", "models": ["a/mock-text", "b/mock-text", "c/mock-text"]},
            *({"name": f"s-{strategy}", "strategy": strategy, "models": ["d/mock-text", "e/mock-text", "f/mock-text"],
               **({"weights": [0, 1, 0]} if strategy == "weighted" else {})} for strategy in OTHERS),
        ],
        # Failures must not cool the accounts down for longer than a test step.
        "routing": {"resilience": {"cooldown": {"base_s": 0.001},
                                   "profiles": {"default": {"failure_threshold": 100}}}},
    }
    with routing_stack(tmp_path_factory.mktemp("strategies"), config, ["strategies"], REPLICAS) as running:
        yield running
    SCRIPTED.clear()


async def _answered_by(stack: RoutingStack, replica: int, model: str) -> str:
    answer = await stack.chat(replica, model, f"{model} {uuid.uuid4().hex}")
    assert answer.error is None and answer.start is not None, answer.error
    return answer.start.provider


async def _until(stack: RoutingStack, model: str, provider: str, timeout_s: float = 20.0) -> None:
    """Until every replica sends `model` to `provider` (they reload or re-read state on their own)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        answered = [await _answered_by(stack, r, model) for r in range(REPLICAS)]
        if answered == [provider] * REPLICAS:
            return
        assert asyncio.get_running_loop().time() < deadline, f"{model}: {answered}, wanted {provider}"
        await asyncio.sleep(0.2)


async def test_latency_optimized_orders_by_the_latency_analytics_records(stack: RoutingStack) -> None:
    # No samples yet: the list's order, so the slow account (300 ms scripted delay) answers.
    assert [await _answered_by(stack, r, "quick") for r in range(REPLICAS)] == ["slow", "slow"]
    for replica in range(REPLICAS):  # traffic the analytics service measures
        await _answered_by(stack, replica, "fast/mock-text")
    client = connect(stack.gateway.settings)
    latency = LatencyStore(client, stack.gateway.settings.env)
    try:
        for _ in range(100):
            slow, fast = await latency.recent_p50("slow", 10), await latency.recent_p50("fast", 10)
            if slow is not None and fast is not None:
                break
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()
    assert slow is not None and fast is not None and slow >= 300 > fast
    # Each replica caches a provider's p50 for a few seconds, then reads the new samples.
    await _until(stack, "quick", "fast")
    # The fastest failing: the next fastest answers.
    SCRIPTED["sk-fast"] = "mock-503"
    try:
        assert [await _answered_by(stack, r, "quick") for r in range(REPLICAS)] == ["slow", "slow"]
    finally:
        del SCRIPTED["sk-fast"]


async def test_cost_optimized_orders_by_the_pricing_table_and_follows_its_edits(stack: RoutingStack) -> None:
    def prices(listprice: float, compat: float) -> None:
        with contextlib.closing(stack.gateway.admin_client()) as admin:
            admin.put("/api/pricing", json={"prices": [
                {"providerType": "openai", "model": "mock-text", "input": listprice, "output": listprice},
                {"providerType": "openai-compatible", "model": "mock-text", "input": compat, "output": compat},
            ]}).raise_for_status()

    prices(listprice=20, compat=1)
    await _until(stack, "cheap", "compat")
    prices(listprice=0.5, compat=1)   # the announcement reloads every replica's snapshot
    await _until(stack, "cheap", "listprice")
    SCRIPTED["sk-listprice"] = "mock-503"
    try:  # the cheapest failing: the next cheapest answers
        assert [await _answered_by(stack, r, "cheap") for r in range(REPLICAS)] == ["compat", "compat"]
    finally:
        del SCRIPTED["sk-listprice"]


async def test_fill_first_moves_to_the_next_step_where_lkgp_returns_to_the_first(stack: RoutingStack) -> None:
    async def both() -> tuple[list[str], list[str]]:
        ff = [await _answered_by(stack, r, "ff") for r in range(REPLICAS)]
        lk = [await _answered_by(stack, r, "lk") for r in range(REPLICAS)]
        return ff, lk

    assert await both() == (["a", "a"], ["a", "a"])
    SCRIPTED["sk-a"] = "mock-503"
    assert await both() == (["b", "b"], ["b", "b"])
    del SCRIPTED["sk-a"]  # a works again: both stay on b, the step that answered
    assert await both() == (["b", "b"], ["b", "b"])
    SCRIPTED["sk-b"] = "mock-503"
    # b fails: fill-first moves on to c, the next one; lkgp goes back to a, the first.
    ff = [await _answered_by(stack, r, "ff") for r in range(REPLICAS)]
    lk = [await _answered_by(stack, r, "lk") for r in range(REPLICAS)]
    del SCRIPTED["sk-b"]
    assert (ff, lk) == (["c", "c"], ["a", "a"])
    # c's account allows 3 requests a minute: the third fills it, then fill-first wraps to a.
    assert await _answered_by(stack, 0, "ff") == "c"
    assert [await _answered_by(stack, r, "ff") for r in range(REPLICAS)] == ["a", "a"]


@pytest.mark.parametrize("strategy", OTHERS)
async def test_the_order_of_the_other_strategies_across_replicas(stack: RoutingStack, strategy: str) -> None:
    turns = 30 if strategy in ("random", "p2c") else 6
    answered = [await _answered_by(stack, i % REPLICAS, f"s-{strategy}") for i in range(turns)]
    if strategy == "priority":
        assert answered == ["d"] * turns
        SCRIPTED["sk-d"] = "mock-503"
        try:
            assert [await _answered_by(stack, r, "s-priority") for r in range(REPLICAS)] == ["e", "e"]
        finally:
            del SCRIPTED["sk-d"]
    elif strategy in ("round-robin", "least-used"):   # one shared counter / shared use counts
        assert answered == ["d", "e", "f", "d", "e", "f"]
    elif strategy == "weighted":   # weights 0, 1, 0: only e is ever drawn first
        assert answered == ["e"] * turns
    elif strategy == "random":
        assert set(answered) == {"d", "e", "f"}
    else:   # p2c: of two drawn at random, the less used first: the load stays even
        assert min(answered.count(s) for s in "def") >= 6, answered

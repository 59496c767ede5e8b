"""Budget reservations on a real Redis: concurrent reservations from two clients never pass the
limit; settle, release and expiry; accounting's ingest turns a hold into spend exactly once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as redis

from omniroute.settings import Settings
from omniroute.shared_state import budget
from omniroute.shared_state.budget_holds import BudgetHolds, HeldBudget
from tests.support import REDIS_URL

DOLLAR = budget.NANOS_PER_USD


@pytest.fixture
async def redis_client(settings: Settings) -> Any:
    client = redis.from_url(REDIS_URL)
    yield client
    async for key in client.scan_iter(match=f"{settings.env}:*"):
        await client.delete(key)
    await client.aclose()


def _counter(settings: Settings, key_id: str, period: str = "monthly") -> str:
    start, _ = budget.period_bounds(period, datetime.now(UTC))
    return budget.spend_key(settings.env, key_id, period, start)


async def _held(client: redis.Redis, settings: Settings, key_id: str) -> int:
    return int(await client.hget(budget.holds_key(settings.env, key_id), budget.TOTAL_FIELD) or 0)


async def test_concurrent_reservations_from_two_routers_stop_exactly_at_the_limit(
        settings: Settings, redis_client: redis.Redis) -> None:
    other = redis.from_url(REDIS_URL)
    try:
        routers = [BudgetHolds(redis_client, settings.env), BudgetHolds(other, settings.env)]
        counter = _counter(settings, "key-c")
        await redis_client.set(counter, DOLLAR)  # $1 spent of $6: room for exactly 5 × $1
        results = await asyncio.gather(*(
            routers[i % 2].reserve("key-c", f"r{i}", counter, 6 * DOLLAR, DOLLAR, 60) for i in range(40)))
    finally:
        await other.aclose()
    assert sum(r.admitted for r in results) == 5
    assert await _held(redis_client, settings, "key-c") == 5 * DOLLAR
    refused = [r for r in results if not r.admitted]
    assert all(r.spent_nanos == DOLLAR and r.remaining_nanos(6 * DOLLAR) == 0 for r in refused)


async def test_a_budget_that_is_spent_refuses_even_a_free_request(
        settings: Settings, redis_client: redis.Redis) -> None:
    holds = BudgetHolds(redis_client, settings.env)
    counter = _counter(settings, "key-f")
    await redis_client.set(counter, 2 * DOLLAR)
    assert not (await holds.reserve("key-f", "r1", counter, 2 * DOLLAR, 0, 60)).admitted
    assert (await holds.reserve("key-f", "r2", counter, 3 * DOLLAR, 0, 60)).admitted


async def test_settle_release_and_ingest_count_each_request_once(
        settings: Settings, redis_client: redis.Redis) -> None:
    holds = BudgetHolds(redis_client, settings.env)
    counter = _counter(settings, "key-s")
    limit = 10 * DOLLAR
    for request_id in ("a", "b", "c"):
        assert (await holds.reserve("key-s", request_id, counter, limit, 3 * DOLLAR, 60)).admitted
    assert not (await holds.reserve("key-s", "d", counter, limit, 2 * DOLLAR, 60)).admitted
    assert await holds.release("key-s", "c")               # failed: costs nothing
    assert await holds.settle("key-s", "a", DOLLAR // 2, 600)  # answered: the real cost
    assert await _held(redis_client, settings, "key-s") == 3 * DOLLAR + DOLLAR // 2
    # Accounting's ingest adds a's cost and drops its hold in the same step; twice adds nothing.
    spend = [budget.Spend("a", "key-s", DOLLAR // 2, datetime.now(UTC))]
    assert await budget.record_spend(redis_client, settings.env, spend) == 1
    assert await budget.record_spend(redis_client, settings.env, spend) == 0
    assert int(await redis_client.get(counter) or 0) == DOLLAR // 2
    assert await _held(redis_client, settings, "key-s") == 3 * DOLLAR
    # A settle that comes after the ingest does not bring the hold back.
    assert not await holds.settle("key-s", "a", DOLLAR // 2, 600)
    assert await _held(redis_client, settings, "key-s") == 3 * DOLLAR
    # A free request's ingest drops its hold too.
    free = [budget.Spend("b", "key-s", 0, datetime.now(UTC))]
    await budget.record_spend(redis_client, settings.env, free)
    assert await _held(redis_client, settings, "key-s") == 0
    assert int(await redis_client.get(counter) or 0) == DOLLAR // 2


async def test_a_renewed_hold_outlives_its_first_deadline_and_an_expired_one_stays_gone(
        settings: Settings, redis_client: redis.Redis) -> None:
    holds = BudgetHolds(redis_client, settings.env)
    counter = _counter(settings, "key-l")
    team_counter = _counter(settings, budget.team_owner("t-l"))
    budgets = [HeldBudget("key-l", counter, 4 * DOLLAR), HeldBudget(budget.team_owner("t-l"), team_counter, 4 * DOLLAR)]
    assert all(r.admitted for r in await holds.reserve_all("long", budgets, 3 * DOLLAR, 1))
    assert all(r.admitted for r in await holds.reserve_all("short", budgets, DOLLAR, 1))
    await asyncio.sleep(0.6)
    # The long stream is still running: its holds (key and team) are renewed; the other's are not.
    assert await holds.extend_all(["key-l", budget.team_owner("t-l")], "long", 60) == 2
    await asyncio.sleep(0.7)  # past both first deadlines
    for owner in ("key-l", budget.team_owner("t-l")):
        refused = (await holds.reserve_all("probe", [HeldBudget(owner, counter, 4 * DOLLAR)], 2 * DOLLAR, 60))[0]
        assert not refused.admitted and refused.held_nanos == 3 * DOLLAR  # "short" expired, "long" held
    assert await holds.extend_all(["key-l"], "short", 60) == 0  # expired: stays gone
    assert await _held(redis_client, settings, "key-l") == 3 * DOLLAR


async def test_holds_of_a_router_that_died_expire_and_the_budget_is_whole_again(
        settings: Settings, redis_client: redis.Redis) -> None:
    holds = BudgetHolds(redis_client, settings.env)
    counter = _counter(settings, "key-x")
    for request_id in ("x1", "x2"):
        assert (await holds.reserve("key-x", request_id, counter, 4 * DOLLAR, 2 * DOLLAR, 1)).admitted
    assert not (await holds.reserve("key-x", "x3", counter, 4 * DOLLAR, DOLLAR, 60)).admitted
    await asyncio.sleep(1.2)  # nobody settles or releases them
    assert (await holds.reserve("key-x", "x4", counter, 4 * DOLLAR, 4 * DOLLAR, 60)).admitted
    assert await _held(redis_client, settings, "key-x") == 4 * DOLLAR
    assert await redis_client.zcard(budget.hold_deadlines_key(settings.env, "key-x")) == 1
    assert await redis_client.ttl(budget.holds_key(settings.env, "key-x")) > 60

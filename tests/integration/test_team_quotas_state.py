"""Team quotas in Redis, against a real Redis, from two clients (two routers): the key's and the
team's rate limits admitted in one script (a team refusal counts nothing for the key, and the
other way round); the key's and the team's budgets reserved together, all or nothing; settle,
release and expiry for both; accounting's ingest adds the spend to the key and the team once and
drops both holds; the rebuild from Postgres knows team totals."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as redis

from omniroute.settings import Settings
from omniroute.shared_state import budget
from omniroute.shared_state.budget_holds import BudgetHolds, HeldBudget
from omniroute.shared_state.ratelimit import Limits, RateLimiter
from tests.support import REDIS_URL

DOLLAR = budget.NANOS_PER_USD
TEAM = budget.team_owner("ml")


@pytest.fixture
async def clients(settings: Settings) -> Any:
    """Two connections: each stands for one router replica."""
    pair = [redis.from_url(REDIS_URL), redis.from_url(REDIS_URL)]
    yield pair
    async for key in pair[0].scan_iter(match=f"{settings.env}:*"):
        await pair[0].delete(key)
    for client in pair:
        await client.aclose()


def _counter(settings: Settings, owner: str, period: str = "monthly") -> str:
    start, _ = budget.period_bounds(period, datetime.now(UTC))
    return budget.spend_key(settings.env, owner, period, start)


async def _held(client: redis.Redis, settings: Settings, owner: str) -> int:
    return int(await client.hget(budget.holds_key(settings.env, owner), budget.TOTAL_FIELD) or 0)


async def test_two_keys_share_the_team_rpm_across_two_routers_exactly(
        settings: Settings, clients: list[redis.Redis]) -> None:
    limiters = [RateLimiter(client, settings.env) for client in clients]
    team = ("team:ml", Limits(rpm=7))
    results = await asyncio.gather(*(
        limiters[i % 2].admit_all([(f"key:k{i % 2}", Limits(rpm=100)), team], f"r{i}") for i in range(30)))
    admitted = [i for i, answer in enumerate(results) if all(a.allowed for a in answer)]
    assert len(admitted) == 7
    # Refused by the team: nothing stayed counted for the key that asked.
    key_usage = [await limiters[0].usage(f"key:k{k}", Limits(rpm=100)) for k in (0, 1)]
    assert sum(u.rpm_used for u in key_usage) == 7
    refused = next(answer for answer in results if not all(a.allowed for a in answer))
    assert refused[0].allowed and not refused[1].allowed and refused[1].reasons == ("rpm",)


async def test_a_key_limit_narrower_than_the_teams_applies_and_counts_nothing_in_the_team(
        settings: Settings, clients: list[redis.Redis]) -> None:
    limiter = RateLimiter(clients[0], settings.env)
    team = ("team:ml", Limits(rpm=50, concurrency=10))
    results = [await limiter.admit_all([("key:narrow", Limits(rpm=3)), team], f"n{i}") for i in range(6)]
    assert [all(a.allowed for a in answer) for answer in results] == [True] * 3 + [False] * 3
    assert [answer[0].allowed for answer in results[3:]] == [False] * 3
    used = await limiter.usage("team:ml", team[1])
    assert (used.rpm_used, used.concurrency_used) == (3, 3)


async def test_team_concurrency_and_tokens_are_shared(settings: Settings, clients: list[redis.Redis]) -> None:
    limiters = [RateLimiter(client, settings.env, lease_s=30) for client in clients]
    team = ("team:ml", Limits(concurrency=2, tpm=100))
    assert all(a.allowed for a in await limiters[0].admit_all([("key:a", Limits()), team], "c1"))
    assert all(a.allowed for a in await limiters[1].admit_all([("key:b", Limits()), team], "c2"))
    third = await limiters[1].admit_all([("key:b", Limits()), team], "c3")
    assert not third[1].allowed and third[1].reasons == ("concurrency",)
    await limiters[0].release("team:ml", "c1")
    assert all(a.allowed for a in await limiters[1].admit_all([("key:b", Limits()), team], "c4"))
    for limiter in limiters:
        await limiter.add_tokens("team:ml", 60)
    over = await limiters[0].admit_all([("key:a", Limits()), ("team:ml", Limits(tpm=100))], "t1")
    assert not over[1].allowed and over[1].tpm_used == 120


async def test_a_team_budget_worth_k_requests_admits_k_across_two_keys_and_two_routers(
        settings: Settings, clients: list[redis.Redis]) -> None:
    routers = [BudgetHolds(client, settings.env) for client in clients]
    team = HeldBudget(TEAM, _counter(settings, TEAM), 5 * DOLLAR)
    keys = [HeldBudget(f"key-{k}", _counter(settings, f"key-{k}"), 100 * DOLLAR) for k in (0, 1)]
    results = await asyncio.gather(*(
        routers[i % 2].reserve_all(f"r{i}", [keys[i % 2], team], DOLLAR, 60) for i in range(25)))
    admitted = [i for i, answer in enumerate(results) if all(r.admitted for r in answer)]
    assert len(admitted) == 5
    assert await _held(clients[0], settings, TEAM) == 5 * DOLLAR
    # The keys hold exactly what their admitted requests hold: a team refusal held nothing there.
    key_holds = [await _held(clients[0], settings, f"key-{k}") for k in (0, 1)]
    assert sum(key_holds) == 5 * DOLLAR
    refused = next(answer for answer in results if not all(r.admitted for r in answer))
    assert refused[0].admitted and not refused[1].admitted
    assert refused[1].remaining_nanos(5 * DOLLAR) == 0 and refused[1].held_nanos == 5 * DOLLAR


async def test_a_key_budget_refusal_holds_nothing_in_the_team(settings: Settings, clients: list[redis.Redis]) -> None:
    holds = BudgetHolds(clients[0], settings.env)
    team = HeldBudget(TEAM, _counter(settings, TEAM), 100 * DOLLAR)
    key = HeldBudget("key-small", _counter(settings, "key-small"), 2 * DOLLAR)
    answers = [await holds.reserve_all(f"s{i}", [key, team], DOLLAR, 60) for i in range(4)]
    assert [all(r.admitted for r in answer) for answer in answers] == [True, True, False, False]
    assert await _held(clients[0], settings, TEAM) == 2 * DOLLAR


async def test_settle_release_ingest_and_expiry_count_once_for_key_and_team(
        settings: Settings, clients: list[redis.Redis]) -> None:
    client = clients[0]
    holds = BudgetHolds(client, settings.env)
    team = HeldBudget(TEAM, _counter(settings, TEAM), 10 * DOLLAR)
    key = HeldBudget("key-s", _counter(settings, "key-s"), 10 * DOLLAR)
    for request_id in ("a", "b", "c"):
        assert all(r.admitted for r in await holds.reserve_all(request_id, [key, team], 3 * DOLLAR, 60))
    assert await holds.release_all(["key-s", TEAM], "c") == 2          # failed: costs nothing
    assert await holds.settle_all(["key-s", TEAM], "a", DOLLAR // 2, 600) == 2  # the real cost
    for owner in ("key-s", TEAM):
        assert await _held(client, settings, owner) == 3 * DOLLAR + DOLLAR // 2
    # Ingest adds a's cost to the key's and the team's counters and drops both holds; twice adds nothing.
    spend = [budget.Spend("a", "key-s", DOLLAR // 2, datetime.now(UTC), team_id="ml")]
    assert await budget.record_spend(client, settings.env, spend) == 1
    assert await budget.record_spend(client, settings.env, spend) == 0
    for owner in ("key-s", TEAM):
        assert int(await client.get(_counter(settings, owner)) or 0) == DOLLAR // 2
        assert int(await client.get(_counter(settings, owner, "daily")) or 0) == DOLLAR // 2
        assert await _held(client, settings, owner) == 3 * DOLLAR
    # A request whose router died: both holds expire and both budgets are whole again.
    assert all(r.admitted for r in await holds.reserve_all("d", [key, team], 6 * DOLLAR, 1))
    assert not all(r.admitted for r in await holds.reserve_all("e", [key, team], DOLLAR, 60))
    await holds.release_all(["key-s", TEAM], "b")
    await asyncio.sleep(1.2)
    answer = await holds.reserve_all("f", [key, team], 9 * DOLLAR + DOLLAR // 2, 60)
    assert all(r.admitted for r in answer)
    assert [r.held_nanos for r in answer] == [0, 0]

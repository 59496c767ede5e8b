"""The budget stage without Redis: no call for a key without a budget, refusal shape (and the
stage answers with it alone), fail open (or closed when configured) when Redis fails."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any, cast

import pytest
import redis.asyncio as redis

from omniroute.config.snapshot import ApiKey
from omniroute.limits.budget import period_bounds, spend_key
from omniroute.settings import Settings
from omniroute_router.errors import RoutingError
from omniroute_router.pipeline import budget as budget_gate
from omniroute_router.pipeline.budget import BudgetGate

from .stages import Answering, make_call, response, run
from .stages import start as start_event

SETTINGS = Settings(env="unit")


class FakeRedis:
    def __init__(self, values: dict[str, bytes] | None = None, fail: bool = False) -> None:
        self.values = values or {}
        self.fail = fail
        self.gets: list[str] = []

    async def get(self, name: str) -> bytes | None:
        self.gets.append(name)
        if self.fail:
            raise redis.ConnectionError("down")
        return self.values.get(name)


def _key(budget: dict[str, Any] | None) -> ApiKey:
    return ApiKey(id="key_1", name="k", enabled=True, allowed_models=None, limits={}, budget=budget,
                  expires_at=None)


async def _check(client: FakeRedis, key: ApiKey | None, settings: Settings = SETTINGS) -> None:
    await budget_gate.check(client, settings, key)  # type: ignore[arg-type]


async def test_no_budget_means_no_redis_call() -> None:
    client = FakeRedis()
    await _check(client, None)
    await _check(client, _key(None))
    assert client.gets == []


async def test_exhausted_budget_is_a_429_that_says_so() -> None:
    start, _ = period_bounds("monthly", datetime.now(UTC))
    client = FakeRedis({spend_key("unit", "key_1", "monthly", start): b"2000000000"})  # $2
    with pytest.raises(RoutingError) as refused:
        await _check(client, _key({"limit": 1.0, "period": "monthly"}))
    error = refused.value.to_proto()
    assert (error.status, error.type, error.code, error.retryable) == (
        429, "insufficient_quota", "budget_exhausted", False)
    assert "Budget exhausted" in error.message and "$2.00 of its $1.00 monthly" in error.message
    assert int(error.headers["retry-after"]) > 0 and error.retry_after_s > 0
    assert len(client.gets) == 1  # one GET

    await _check(client, _key({"limit": 5.0, "period": "monthly"}))  # under the limit: through


async def test_redis_failure_fails_open_unless_configured_closed() -> None:
    client = FakeRedis(fail=True)
    await _check(client, _key({"limit": 1.0}))
    closed = dataclasses.replace(SETTINGS, budget_fail_open=False)
    with pytest.raises(RoutingError) as refused:
        await _check(client, _key({"limit": 1.0}), closed)
    assert refused.value.status == 503 and refused.value.code == "budget_unavailable"


async def test_the_stage_refuses_an_exhausted_key_alone_and_lets_others_through() -> None:
    start, _ = period_bounds("monthly", datetime.now(UTC))
    client = FakeRedis({spend_key("unit", "key_1", "monthly", start): b"2000000000"})  # $2
    gate = BudgetGate(cast(Any, client), SETTINGS)
    call = make_call()
    call.key = _key({"limit": 1.0, "period": "monthly"})
    next = Answering([start_event(), response()])
    [event] = await run(gate, call, next)
    assert event.error.code == "budget_exhausted" and not next.calls
    call.key = _key(None)
    assert len(await run(gate, call, next)) == 2 and len(next.calls) == 1

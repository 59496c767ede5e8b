"""The polled gauges (omniroute.telemetry.gauges) against real NATS, Redis and Postgres: queue
lag of a durable consumer, breaker state per connection, budget limit and spend per key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import redis.asyncio as redis
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from psycopg_pool import AsyncConnectionPool

from omniroute.bus.connection import ensure_stream
from omniroute.config.routing_spec import ResilienceProfile
from omniroute.config.spec import KeySpec, TeamSpec
from omniroute.settings import Settings
from omniroute.shared_state import breaker, budget
from omniroute.shared_state.budget_holds import BudgetHolds
from omniroute.store import config_repo, teams_repo
from omniroute.telemetry import gauges
from tests.integration.accounting_support import publish, usage_event


def observed(reader: InMemoryMetricReader) -> dict[str, dict[tuple[tuple[str, Any], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, Any], ...], float]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    out.setdefault(metric.name, {})[tuple(sorted((point.attributes or {}).items()))] = \
                        point.value  # type: ignore[union-attr]
    return out


async def test_consumer_lag(settings: Settings, nats_client: Client) -> None:
    await ensure_stream(nats_client, settings)
    js = nats_client.jetstream()
    await js.add_consumer(settings.stream_name, ConsumerConfig(
        durable_name="accounting", ack_policy=AckPolicy.EXPLICIT,
        filter_subject=settings.subject("usage.>")))
    reader = InMemoryMetricReader()
    lag = gauges.consumer_lag(MeterProvider(metric_readers=[reader]).get_meter("t"), js, settings,
                              "accounting")
    await publish(nats_client, settings, [usage_event(f"lag-{i}") for i in range(7)])
    # Two fetched and not acked yet: still lag (they may come back), next to the 5 undelivered.
    subscription = await js.pull_subscribe(settings.subject("usage.>"), durable="accounting",
                                           stream=settings.stream_name)
    await subscription.fetch(batch=2, timeout=2)
    await lag.poll_once()
    assert observed(reader)["omniroute.consumer.lag"] == {(("consumer", "accounting"),): 7}

    missing = gauges.consumer_lag(MeterProvider().get_meter("t"), js, settings, "no-such-durable")
    await missing.poll_once()  # an unknown durable is no series, not an error
    assert missing.values == {"omniroute.consumer.lag": {}, "omniroute.consumer.redelivered": {}}


async def test_breaker_states(settings: Settings) -> None:
    client = redis.from_url(settings.redis_url)
    try:
        breakers = breaker.Breakers(client, settings.env)
        profile = ResilienceProfile(failure_threshold=3, degraded_threshold=2)
        for _ in range(3):
            await breakers.record("conn-open", False, profile)
        for _ in range(2):
            await breakers.record("conn-degraded", False, profile)
        reader = InMemoryMetricReader()
        polled = gauges.breaker_states(MeterProvider(metric_readers=[reader]).get_meter("t"), client,
                                       settings.env)
        await polled.poll_once()
        got = observed(reader)
        assert got["omniroute.breaker.state"] == {(("connection", "conn-open"),): 3,
                                                  (("connection", "conn-degraded"),): 1}
        assert got["omniroute.breaker.failures"][(("connection", "conn-open"),)] == 3

        await breakers.record("conn-open", True, profile)  # closes: its Redis key is deleted
        await polled.poll_once()
        assert observed(reader)["omniroute.breaker.state"][(("connection", "conn-open"),)] == 0
    finally:
        await breakers.reset()
        await client.aclose()


async def test_budget_levels(settings: Settings, database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        key_id, _ = await config_repo.create_key(conn, KeySpec(
            name=f"gauge-{settings.env}", budget={"limit": 2, "period": "monthly"}))
    client = redis.from_url(settings.redis_url)
    pool = AsyncConnectionPool(database_url, min_size=1, max_size=1, open=False)
    await pool.open()
    try:
        await budget.record_spend(client, settings.env, [budget.Spend(
            request_id=f"{settings.env}-spend", key_id=key_id, nanos=250_000_000, at=datetime.now(UTC))])
        reader = InMemoryMetricReader()
        polled = gauges.budget_levels(MeterProvider(metric_readers=[reader]).get_meter("t"), pool,
                                      client, settings.env)
        await polled.poll_once()
        got = observed(reader)
        attrs = (("key", key_id), ("key_name", f"gauge-{settings.env}"), ("period", "monthly"))
        assert got["omniroute.budget.limit.usd"][attrs] == 2.0
        assert got["omniroute.budget.spend.usd"][attrs] == 0.25
        assert got["omniroute.budget.remaining.usd"][attrs] == 1.75
        # A request in flight holds $0.50 of it: what remains for others drops by as much.
        counter = budget.spend_key(settings.env, key_id, "monthly",
                                   budget.period_bounds("monthly", datetime.now(UTC))[0])
        held = await BudgetHolds(client, settings.env).reserve(
            key_id, f"{settings.env}-held", counter, 2 * budget.NANOS_PER_USD, 500_000_000, 60)
        assert held.admitted
        await polled.poll_once()
        assert observed(reader)["omniroute.budget.remaining.usd"][attrs] == 1.25
    finally:
        await pool.close()
        async for name in client.scan_iter(match=f"{settings.env}:*"):
            await client.delete(name)
        await client.aclose()


async def test_team_budget_levels(settings: Settings, database_url: str) -> None:
    """A team's budget is a series of its own (team, team_name, period), spend from every key."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await teams_repo.upsert(conn, TeamSpec.model_validate(
            {"id": "gauged", "name": "Gauged", "budget": {"limit": 3, "period": "daily"}}))
        key_ids = [(await config_repo.create_key(conn, KeySpec(name=f"gauged-{i}-{settings.env}", team="gauged")))[0]
                   for i in range(2)]
    client = redis.from_url(settings.redis_url)
    pool = AsyncConnectionPool(database_url, min_size=1, max_size=1, open=False)
    await pool.open()
    try:
        now = datetime.now(UTC)
        await budget.record_spend(client, settings.env, [
            budget.Spend(request_id=f"{settings.env}-team-{i}", key_id=key_id, nanos=500_000_000, at=now,
                         team_id="gauged") for i, key_id in enumerate(key_ids)])
        owner = budget.team_owner("gauged")
        counter = budget.spend_key(settings.env, owner, "daily", budget.period_bounds("daily", now)[0])
        held = await BudgetHolds(client, settings.env).reserve(
            owner, f"{settings.env}-team-held", counter, 3 * budget.NANOS_PER_USD, 250_000_000, 60)
        assert held.admitted
        reader = InMemoryMetricReader()
        polled = gauges.budget_levels(MeterProvider(metric_readers=[reader]).get_meter("t"), pool,
                                      client, settings.env)
        await polled.poll_once()
        got = observed(reader)
        attrs = (("period", "daily"), ("team", "gauged"), ("team_name", "Gauged"))
        assert got["omniroute.budget.limit.usd"][attrs] == 3.0
        assert got["omniroute.budget.spend.usd"][attrs] == 1.0
        assert got["omniroute.budget.remaining.usd"][attrs] == 1.75
    finally:
        await pool.close()
        async for name in client.scan_iter(match=f"{settings.env}:*"):
            await client.delete(name)
        await client.aclose()

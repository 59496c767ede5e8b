"""Accounting over real JetStream, Postgres and Redis: cost computed once and stored, every
event exactly once in rows, spend counters and metrics — with duplicates, two replicas, a
Postgres outage, and counters rebuilt from Postgres."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import redis.asyncio as redis
from nats.aio.client import Client

from omniroute.analytics_store import LatencyStore, SessionStore
from omniroute.bus.connection import ensure_stream
from omniroute.settings import Settings
from omniroute.shared_state import budget
from omniroute.store import usage_queries, usage_repo
from omniroute.store.usage_queries import UsageFilter
from omniroute_accounting import maintenance
from tests.integration.accounting_support import (
    PostgresProxy,
    expected_cost,
    publish,
    running_accounting,
    usage_event,
)
from tests.support import REDIS_URL

# Independent of the seed file's code path: the list prices the events below must be billed at.
PRICES = {"gpt-4o": ("2.50", "10.00", "1.25"), "claude-sonnet-4-5": ("3.00", "15.00", "0.30"),
          "gpt-4o-mini": ("0.15", "0.60", "0.075")}


@pytest.fixture
async def redis_client(settings: Settings) -> Any:
    client = redis.from_url(REDIS_URL)
    yield client
    async for key in client.scan_iter(match=f"{settings.env}:*"):
        await client.delete(key)
    await client.aclose()


async def rows(database_url: str, prefix: str) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(database_url,
                                                     row_factory=psycopg.rows.dict_row) as conn:
        cursor = await conn.execute("SELECT * FROM usage WHERE request_id LIKE %s", (prefix + "%",))
        return await cursor.fetchall()


async def count(database_url: str, prefix: str) -> int:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        row = await (await conn.execute("SELECT count(*) FROM usage WHERE request_id LIKE %s",
                                        (prefix + "%",))).fetchone()
        return int(row[0]) if row else 0


async def wait_rows(database_url: str, prefix: str, expected: int, within_s: float = 20) -> None:
    deadline = time.monotonic() + within_s
    while (found := await count(database_url, prefix)) < expected:
        assert time.monotonic() < deadline, f"{found} of {expected} rows after {within_s}s"
        await asyncio.sleep(0.1)


async def wait_drained(nats_client: Client, settings: Settings, within_s: float = 10) -> None:
    deadline = time.monotonic() + within_s
    while True:
        info = await nats_client.jetstream().consumer_info(settings.stream_name, "accounting")
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return
        assert time.monotonic() < deadline, f"consumer not drained: {info}"
        await asyncio.sleep(0.1)


async def counters(client: redis.Redis, settings: Settings, key: str,
                   at: datetime | None = None) -> dict[str, int]:
    at = at or datetime.now(UTC)
    result = {}
    for period in budget.PERIODS:
        start, _ = budget.period_bounds(period, at)
        result[period] = int(await client.get(budget.spend_key(settings.env, key, period, start)) or 0)
    return result


def mixed_events(prefix: str, n: int) -> list[Any]:
    """Several keys, priced and unpriced models, cached tokens, the rich fields."""
    events = []
    for index in range(n):
        model, provider = [("gpt-4o", "openai"), ("claude-sonnet-4-5", "anthropic"),
                           ("gpt-4o-mini-2024-07-18", "openai"), ("no-such-model", "openai")][index % 4]
        events.append(usage_event(
            f"{prefix}{index}", key=f"key-{index % 3}", provider=provider, model=model,
            input_tokens=1000 + index, output_tokens=200 + index, cached=(index % 5) * 100,
            reasoning=index % 4 * 10, combo="c1" if index % 7 == 0 else "",
            cache_hit=index % 11 == 0, failed_attempts=["openai/main:429"] if index % 6 == 0 else [],
            error_class="" if index % 13 else "upstream_error",
            status=200 if index % 13 else 502, ttft_ms=30.0, stream=True))
    return events


def cost_of(event: Any) -> Decimal:
    if event.cache_hit:
        return Decimal(0)
    # A model without a price is charged the configured default (OMNIROUTE_DEFAULT_PRICE_*).
    default = Settings()
    prices = {**PRICES, "gpt-4o-mini-2024-07-18": PRICES["gpt-4o-mini"],
              "no-such-model": (default.default_price_input_per_mtok,
                                default.default_price_output_per_mtok, None)}
    return expected_cost(event, prices)


async def test_cost_is_stored_and_rows_and_spend_are_exact_with_duplicates_and_two_replicas(
        settings: Settings, nats_client: Client, database_url: str, redis_client: redis.Redis) -> None:
    await ensure_stream(nats_client, settings)
    events = mixed_events("dup-", 300)
    await publish(nats_client, settings, events)
    await publish(nats_client, settings, events)  # same msg ids: JetStream stores them once
    await publish(nats_client, settings, events[::2], msg_id_suffix="#again")  # stored twice: redelivery

    async with running_accounting(settings, nats_client, database_url, replicas=2, batch=64):
        await wait_rows(database_url, "dup-", 300)
        await wait_drained(nats_client, settings)

    stored = {row["request_id"]: row for row in await rows(database_url, "dup-")}
    assert len(stored) == 300
    spend: dict[str, Decimal] = defaultdict(Decimal)
    for event in events:
        row = stored[event.request_id]
        assert row["cost_usd"] == cost_of(event), event.model
        spend[event.key_id] += cost_of(event)
        assert (row["cached_tokens"], row["combo"], row["cache_hit"], row["error_class"],
                row["failed_attempts"], row["status"]) == (
            event.usage.cached_tokens, event.combo, event.cache_hit, event.error_class,
            list(event.failed_attempts), event.status)
    assert stored["dup-1"]["cost_usd"] > 0
    # The unpriced model: charged the default price, not $0.
    assert stored["dup-3"]["cost_usd"] == cost_of(events[3]) > 0
    for key, total in spend.items():
        nanos = int(total * budget.NANOS_PER_USD)
        assert await counters(redis_client, settings, key) == {p: nanos for p in budget.PERIODS}
    # No "counted" markers left behind once the batches committed.
    assert [k async for k in redis_client.scan_iter(match=f"{settings.env}:budget:counted:*")] == []


async def test_postgres_outage_loses_nothing_and_counts_nothing_twice(
        settings: Settings, nats_client: Client, database_url: str, redis_client: redis.Redis) -> None:
    await ensure_stream(nats_client, settings)
    proxy = PostgresProxy()
    await proxy.start()
    proxied_url = psycopg.conninfo.make_conninfo(database_url, host="127.0.0.1", port=proxy.port)
    first, second = mixed_events("out-", 400)[:200], mixed_events("out-", 400)[200:]
    await publish(nats_client, settings, first)

    async with running_accounting(settings, nats_client, proxied_url, batch=25, pool_timeout=1.0):
        await wait_rows(database_url, "out-", 25)
        await proxy.cut()  # Postgres "down": open connections die, new ones are refused
        await publish(nats_client, settings, second)
        await publish(nats_client, settings, second[:50], msg_id_suffix="#again")
        await asyncio.sleep(3)  # batches fail, are nak'ed, and wait in JetStream
        during = await count(database_url, "out-")
        assert during < 400
        info = await nats_client.jetstream().consumer_info(settings.stream_name, "accounting")
        assert info.num_pending + info.num_ack_pending > 0  # waiting, not dropped
        await proxy.restore()
        await wait_rows(database_url, "out-", 400, within_s=30)
        await wait_drained(nats_client, settings, within_s=15)

    stored = await rows(database_url, "out-")
    assert len(stored) == 400
    spend: dict[str, Decimal] = defaultdict(Decimal)
    for event in first + second:
        spend[event.key_id] += cost_of(event)
    assert sum(row["cost_usd"] for row in stored) == sum(spend.values())
    for key, total in spend.items():
        assert (await counters(redis_client, settings, key))["monthly"] == int(total * budget.NANOS_PER_USD)
    await proxy.cut()


async def test_counters_are_rebuilt_from_postgres_and_the_budget_check_refuses_past_the_limit(
        settings: Settings, database_url: str, redis_client: redis.Redis) -> None:
    key = f"key-{settings.env}"
    now = datetime.now(UTC)
    last_month = min(budget.period_bounds(p, now)[0] for p in budget.PERIODS) - timedelta(days=1)
    events = [usage_event(f"rb-{settings.env}-{i}", key=key, input_tokens=100_000, output_tokens=10_000,
                          started=now - timedelta(seconds=i)) for i in range(4)]
    old = usage_event(f"rb-{settings.env}-old", key=key, input_tokens=10**6, started=last_month)
    costs = {event.request_id: Decimal("0.35") for event in events} | {old.request_id: Decimal(5)}
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        assert await usage_repo.insert_usage(conn, [*events, old], costs) == 5  # no Redis involved
    assert (await counters(redis_client, settings, key))["monthly"] == 0

    settings_ = Settings(env=settings.env, database_url=database_url, redis_url=REDIS_URL)
    from psycopg_pool import AsyncConnectionPool

    async with AsyncConnectionPool(database_url, min_size=1, max_size=1) as pool:
        assert await maintenance.rebuild_spend(settings_, pool, redis_client) >= 3
        assert await counters(redis_client, settings, key) == {p: 1_400_000_000 for p in budget.PERIODS}
        # Never lowers: Redis ahead of Postgres (counted before commit) stays ahead.
        monthly = budget.spend_key(settings.env, key, "monthly", budget.period_bounds("monthly", now)[0])
        await redis_client.set(monthly, 2_000_000_000)
        assert await maintenance.rebuild_spend(settings_, pool, redis_client) == 0
        assert int(await redis_client.get(monthly) or 0) == 2_000_000_000
        await redis_client.delete(monthly)
        await maintenance.rebuild_spend(settings_, pool, redis_client)

    class Key:
        id = key
        budget: dict[str, Any] | None = {"limit": 1.40, "period": "monthly", "warnAt": 0.8}

    # Two routers (two Redis clients) agree: $1.40 spent of a $1.40 budget is exhausted.
    other = redis.from_url(REDIS_URL)
    try:
        for client in (redis_client, other):
            status = await budget.check_budget(client, settings, Key())
            assert status.exhausted and status.spent_usd == Decimal("1.4")
            assert "Budget exhausted" in status.message
    finally:
        await other.aclose()
    Key.budget = {"limit": 1.50, "period": "monthly"}
    status = await budget.check_budget(redis_client, settings, Key())
    assert not status.exhausted and status.warning
    Key.budget = {"limit": 1.50, "period": "daily"}
    assert not (await budget.check_budget(redis_client, settings, Key())).exhausted
    Key.budget = None
    assert not (await budget.check_budget(redis_client, settings, Key())).exhausted


async def test_spend_is_added_once_per_request_even_when_a_commit_failed(
        settings: Settings, redis_client: redis.Redis) -> None:
    """The marker makes the retry of a rolled-back batch a no-op in Redis."""
    at = datetime.now(UTC)
    spends = [budget.Spend(f"m{i}", "key-m", 1_000, at) for i in range(3)]
    assert await budget.record_spend(redis_client, settings.env, spends) == 3
    assert await budget.record_spend(redis_client, settings.env, spends) == 0  # the retry
    assert (await counters(redis_client, settings, "key-m"))["daily"] == 3_000
    await budget.forget_counted(redis_client, settings.env, [s.request_id for s in spends])
    assert await redis_client.exists(budget.counted_key(settings.env, "m0")) == 0


async def test_history_buckets_and_groups(settings: Settings, database_url: str) -> None:
    base = datetime(2025, 1, 6, 10, 0, tzinfo=UTC)
    placed = [(f"h-{settings.env}-1", "ka", 5), (f"h-{settings.env}-2", "kb", 40),
              (f"h-{settings.env}-3", "ka", 70), (f"h-{settings.env}-4", "ka", 185)]
    events = [usage_event(rid, key=key, provider=settings.env, started=base + timedelta(minutes=m))
              for rid, key, m in placed]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await usage_repo.insert_usage(conn, events, {e.request_id: Decimal("0.01") for e in events})
        where = UsageFilter(since=base, until=base + timedelta(hours=4), provider=settings.env)
        hourly = await usage_queries.history(conn, where, "hour", None)
        by_key = await usage_queries.history(conn, where, "hour", "key")
        daily = await usage_queries.history(conn, where, "day", None)
    assert [(b["start"], b["requests"]) for b in hourly] == [
        ("2025-01-06T10:00:00+00:00", 2), ("2025-01-06T11:00:00+00:00", 1),
        ("2025-01-06T13:00:00+00:00", 1)]
    assert [(b["start"][11:16], b["key"], b["requests"]) for b in by_key] == [
        ("10:00", "ka", 1), ("10:00", "kb", 1), ("11:00", "ka", 1), ("13:00", "ka", 1)]
    assert daily == [{"start": "2025-01-06T00:00:00+00:00", "requests": 4, "errors": 0,
                      "inputTokens": 4000, "outputTokens": 2000, "cachedTokens": 0,
                      "reasoningTokens": 0, "costUsd": 0.04, "cacheHits": 0, "avgLatencyMs": 120.0}]


async def test_retention_deletes_only_old_rows(settings: Settings, database_url: str) -> None:
    now = datetime.now(UTC)
    events = [usage_event(f"ret-{settings.env}-old", started=now - timedelta(days=40)),
              usage_event(f"ret-{settings.env}-new", started=now - timedelta(days=2))]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await usage_repo.insert_usage(conn, events)
        deleted = await usage_repo.delete_older_than(conn, now - timedelta(days=30), batch=1)
    assert deleted >= 1
    assert await count(database_url, f"ret-{settings.env}-old") == 0
    assert await count(database_url, f"ret-{settings.env}-new") == 1


async def test_telemetry_summary_and_sessions_over_a_window_from_redis(
        settings: Settings, redis_client: redis.Redis) -> None:
    now = datetime.now(UTC)
    recent = [usage_event(f"t{i}", provider="prov", key="key-t", started=now - timedelta(seconds=5))
              for i in range(1, 101)]
    for index, event in enumerate(recent, start=1):
        event.latency_ms = float(index)
    old = [usage_event(f"o{i}", provider="prov", key="key-old", started=now - timedelta(hours=2))
           for i in range(50)]
    for event in old:
        event.latency_ms = 5000.0
    failed = usage_event("f1", provider="prov", status=502)
    latency = LatencyStore(redis_client, settings.env)
    sessions = SessionStore(redis_client, settings.env)
    # Two "replicas" record, one batch redelivered: the window holds each request once.
    await latency.record(recent[:50] + old + [failed])
    await LatencyStore(redis.from_url(REDIS_URL), settings.env).record(recent[50:])
    await latency.record(recent[:50])
    assert await latency.summary(window_s=600) == {
        "prov": {"p50": 50.0, "p95": 95.0, "p99": 99.0, "count": 100}}
    assert (await latency.summary(window_s=4 * 3600))["prov"]["count"] == 150
    await sessions.record(recent + old)
    active = await sessions.active(600)
    assert [(s["keyId"], s["requests"]) for s in active] == [("key-t", 100)]
    assert {s["keyId"] for s in await sessions.active(4 * 3600)} == {"key-t", "key-old"}


async def test_a_nul_character_in_an_event_does_not_block_its_batch(
        settings: Settings, database_url: str, nats_client: Client) -> None:
    """Postgres text and jsonb refuse NUL; a caller can put one in a model name. Before, such an
    event failed its whole batch, redelivered for ever (seen in CI)."""
    await ensure_stream(nats_client, settings)
    events = [usage_event(f"nul-{i}", requested_model="gpt\x00-4o" if i == 1 else "gpt-4o",
                          error_message="bad \x00 model" if i == 1 else "",
                          failed_attempts=["p/c\x00:500"] if i == 1 else [])
              for i in range(3)]
    await publish(nats_client, settings, events)
    async with running_accounting(settings, nats_client, database_url):
        await wait_rows(database_url, "nul-", 3)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        row = await (await conn.execute(
            "SELECT requested_model, error_message, failed_attempts FROM usage WHERE request_id = 'nul-1'")).fetchone()
    assert row == ("gpt-4o", "bad  model", ["p/c:500"])

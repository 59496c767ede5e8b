"""Budget threshold alerts (omniroute.alerts, omniroute_accounting.alerting): three accounting
replicas add spend and check at the same time; each threshold is claimed, published on NATS and
delivered to the webhook once, and a webhook that fails twice still gets each alert once, signed."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
import redis.asyncio as redis
from nats.aio.client import Client
from nats.aio.msg import Msg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from omniroute import alerts
from omniroute.limits import budget
from omniroute.settings import Settings
from omniroute_accounting.alerting import BudgetAlerts
from tests.mocks.webhook import start_webhook
from tests.support import REDIS_URL

SECRET = "s3cret"


async def add_key(database_url: str, key_id: str, raw_budget: dict[str, Any]) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute("INSERT INTO api_keys (id, name, key_hash, key_prefix, budget) "
                           "VALUES (%s, %s, %s, 'sk-', %s)",
                           (key_id, f"name-{key_id}", f"hash-{key_id}", Jsonb(raw_budget)))


async def test_each_threshold_fires_once_with_three_replicas_racing(
        settings: Settings, database_url: str, nats_client: Client) -> None:
    key = f"alert-key-{settings.env}"
    await add_key(database_url, key, {"limit": 1.0, "period": "monthly",
                                      "alertAt": [0.5, 0.8, 1.0]})
    events: list[dict[str, Any]] = []

    async def on_event(message: Msg) -> None:
        events.append(json.loads(message.data))

    subscription = await nats_client.subscribe(settings.subject("budget.alert"), cb=on_event)
    with start_webhook(fail_first=2) as hook:
        configured = dataclasses.replace(settings, budget_alert_webhook_url=hook.url,
                                         budget_alert_webhook_secret=SECRET,
                                         budget_alert_retry_s=0.05)
        pools = [AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False)
                 for _ in range(3)]
        clients = [redis.from_url(REDIS_URL) for _ in range(3)]
        checkers = []
        for pool, client in zip(pools, clients, strict=True):
            await pool.open()
            checkers.append(BudgetAlerts(configured, pool, client, nats_client))
        try:
            now = datetime.now(UTC)

            async def replica(index: int, step: int) -> None:
                # Each replica adds $0.04 of its own request, then checks: $0.12 per round.
                spend = budget.Spend(f"{settings.env}-{step}-{index}", key, 40_000_000, now)
                await budget.record_spend(clients[index], settings.env, [spend])
                await checkers[index].check([key], now)

            for step in range(10):  # $1.20 in all: past every threshold
                await asyncio.gather(*(replica(index, step) for index in range(3)))
            for checker in checkers:
                await checker.drain()
            deadline = time.monotonic() + 5
            while len(events) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # a duplicate would arrive now
        finally:
            for pool in pools:
                await pool.close()
            for client in clients:
                await client.aclose()
    await subscription.unsubscribe()

    assert sorted(event["threshold"] for event in events) == [0.5, 0.8, 1.0]
    assert all(event["keyId"] == key and event["limitUsd"] == 1.0 for event in events)
    assert all(event["spentUsd"] >= event["threshold"] for event in events)
    # The webhook failed twice, was retried, and holds each alert once.
    assert len(hook.received) == 5 and [d.status for d in hook.received[:2]] == [500, 500]
    delivered = [d.body for d in hook.delivered]
    assert sorted(body["threshold"] for body in delivered) == [0.5, 0.8, 1.0]
    for delivery in hook.delivered:
        assert delivery.body["text"].startswith("OmniRoute budget alert: API key")
        timestamp = delivery.headers["x-omniroute-timestamp"]
        assert delivery.headers["x-omniroute-signature"] == alerts.signature(
            SECRET, timestamp, delivery.raw_body)
        assert abs(int(timestamp) - time.time()) < 60
    # Claimed for this period: more spend sends nothing again.
    async with AsyncConnectionPool(database_url, min_size=1, max_size=1) as pool:
        client = redis.from_url(REDIS_URL)
        try:
            assert await BudgetAlerts(settings, pool, client, None).check([key]) == []
        finally:
            await client.aclose()


async def test_no_threshold_below_the_first_and_none_without_thresholds(
        settings: Settings, database_url: str) -> None:
    quiet, silent = f"quiet-{settings.env}", f"silent-{settings.env}"
    await add_key(database_url, quiet, {"limit": 10.0, "period": "daily"})
    await add_key(database_url, silent, {"limit": 1.0, "period": "daily", "alertAt": []})
    now = datetime.now(UTC)
    client = redis.from_url(REDIS_URL)
    try:
        await budget.record_spend(client, settings.env, [
            budget.Spend(f"{settings.env}-q", quiet, 4_900_000_000, now),
            budget.Spend(f"{settings.env}-s", silent, 2_000_000_000, now)])
        async with AsyncConnectionPool(database_url, min_size=1, max_size=1) as pool:
            checker = BudgetAlerts(settings, pool, client, None)
            assert await checker.check([quiet, silent], now) == []
            await budget.record_spend(client, settings.env, [
                budget.Spend(f"{settings.env}-q2", quiet, 100_000_000, now)])
            fired = await checker.check([quiet], now)
            assert [(a.key_id, a.threshold, a.period) for a in fired] == [(quiet, 0.5, "daily")]
    finally:
        await client.aclose()

"""Budget threshold alerts (omniroute.alerts, omniroute_accounting.alerting): three accounting
replicas add spend and check at the same time; each threshold is claimed, published on NATS and
delivered to the webhook once, and a webhook that fails twice still gets each alert once, signed."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import redis.asyncio as redis
from nats.aio.client import Client
from nats.aio.msg import Msg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from omniroute import alerts
from omniroute.bus.connection import ensure_stream
from omniroute.settings import Settings
from omniroute.shared_state import budget
from omniroute_accounting.alerting import BudgetAlerts
from tests.integration.accounting_support import publish, running_accounting, usage_event
from tests.integration.admin_app import running_admin
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


async def test_the_admin_sets_the_webhook_and_its_secret_and_accounting_signs_with_it(
        tmp_path: Path) -> None:
    """PUT /api/settings/budget-alerts: the secret stored encrypted, shown masked, kept when sent
    back masked; accounting then POSTs there, signed with that secret (not the environment's)."""
    async with running_admin(tmp_path) as admin:
        bad = await admin.client.put("/api/settings/budget-alerts",
                                     json={"webhook_url": "ftp://example.com/x"})
        assert bad.status_code in (400, 422)
        with start_webhook() as hook:
            put = await admin.client.put("/api/settings/budget-alerts",
                                         json={"webhook_url": hook.url, "secret": "from-admin"})
            assert put.status_code == 200 and put.json() == {"webhook_url": hook.url, "secret": "…"}
            again = await admin.client.put("/api/settings/budget-alerts",
                                           json={"webhook_url": hook.url, "secret": "…"})
            assert again.json()["secret"] == "…"
            assert (await admin.client.get("/api/settings/budget-alerts")).json() == put.json()
            async with await psycopg.AsyncConnection.connect(admin.settings.database_url) as conn:
                raw = await (await conn.execute(
                    "SELECT value::text FROM admin_settings WHERE key = 'budget_alerts'")).fetchone()
            assert raw and "from-admin" not in raw[0]

            key = f"admin-set-{admin.settings.env}"
            await add_key(admin.settings.database_url, key, {"limit": 1.0, "period": "weekly"})
            configured = dataclasses.replace(admin.settings, budget_alert_webhook_url="http://env.invalid",
                                             budget_alert_webhook_secret="from-env")
            now = datetime.now(UTC)
            client = redis.from_url(REDIS_URL)
            try:
                await budget.record_spend(client, configured.env, [
                    budget.Spend(f"{configured.env}-w", key, 600_000_000, now)])
                async with AsyncConnectionPool(configured.database_url, min_size=1,
                                               max_size=1) as pool:
                    checker = BudgetAlerts(configured, pool, client, None)
                    fired = await checker.check([key], now)
                    await checker.drain()
            finally:
                await client.aclose()
        assert [alert.threshold for alert in fired] == [0.5]
        [delivery] = hook.delivered
        assert delivery.body["keyId"] == key and delivery.body["period"] == "weekly"
        assert delivery.headers["x-omniroute-signature"] == alerts.signature(
            "from-admin", delivery.headers["x-omniroute-timestamp"], delivery.raw_body)


async def test_three_accounting_replicas_consuming_usage_send_each_threshold_once(
        settings: Settings, database_url: str, nats_client: Client) -> None:
    """The whole path: usage events on JetStream, three recorders sharing the durable consumer
    in small batches, each adding spend and checking thresholds as it goes."""
    await ensure_stream(nats_client, settings)
    key = f"consumed-{settings.env}"
    # gpt-4o at the seeded $2.50 / $10 per 1M: 1000 in + 500 out = $0.0075 a request, 10 = $0.075.
    await add_key(database_url, key, {"limit": 0.075, "period": "daily"})
    events: list[dict[str, Any]] = []

    async def on_event(message: Msg) -> None:
        events.append(json.loads(message.data))

    subscription = await nats_client.subscribe(settings.subject("budget.alert"), cb=on_event)
    with start_webhook(fail_first=2) as hook:
        configured = dataclasses.replace(settings, budget_alert_webhook_url=hook.url,
                                         budget_alert_webhook_secret=SECRET,
                                         budget_alert_retry_s=0.05)
        async with running_accounting(configured, nats_client, database_url, replicas=3, batch=2,
                                      alerting=True):
            await publish(nats_client, settings,
                          [usage_event(f"{settings.env}-c{index}", key=key) for index in range(15)])
            deadline = time.monotonic() + 20
            while (len(hook.delivered) < 3 or len(events) < 3) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)  # a duplicate would arrive now
    await subscription.unsubscribe()
    assert sorted(event["threshold"] for event in events) == [0.5, 0.8, 1.0]
    assert sorted(d.body["threshold"] for d in hook.delivered) == [0.5, 0.8, 1.0]
    assert [d.status for d in hook.received[:2]] == [500, 500] and len(hook.received) == 5


async def test_a_pending_alert_is_taken_over_once_when_its_sender_gave_up_or_died(
        settings: Settings, database_url: str) -> None:
    """The receiver is down through the claimer's whole retry schedule: the alert stays pending
    and, once its lease ended, another replica's sweep delivers it, once. An alert recorded as
    pending by a sender that died before its POST is delivered the same way."""
    key = f"pending-{settings.env}"
    await add_key(database_url, key, {"limit": 1.0, "period": "daily", "alertAt": [0.5]})
    now = datetime.now(UTC)
    with start_webhook(fail_first=1_000) as hook:
        configured = dataclasses.replace(settings, budget_alert_webhook_url=hook.url,
                                         budget_alert_webhook_secret=SECRET,
                                         budget_alert_retry_s=0.01)
        client = redis.from_url(REDIS_URL)
        try:
            async with AsyncConnectionPool(database_url, min_size=1, max_size=2) as pool:
                # The lease outlasts the claimer's whole retry schedule even on a loaded machine
                # (0.5 s did not, once: the other replica took over while it still retried).
                claimer = BudgetAlerts(configured, pool, client, None, lease_s=3.0)
                other = BudgetAlerts(configured, pool, client, None, lease_s=3.0)
                await budget.record_spend(client, settings.env, [
                    budget.Spend(f"{settings.env}-p", key, 600_000_000, now)])
                [alert] = await claimer.check([key], now)
                await claimer.drain()
                assert len(hook.received) == 6 and not hook.delivered  # every attempt failed
                assert await other.resend_due() == 0  # still leased to the claimer
                hook.fail_first = 0  # the receiver is back
                await asyncio.sleep(3.1)
                assert await other.resend_due() == 1
                await other.drain()
                assert await other.resend_due() == 0
                # A sender that died between recording the alert and POSTing it.
                orphan = {**alert.as_json(), "alertId": "orphan:daily:x:0.5"}
                await alerts.PendingAlerts(client, settings.env, lease_s=0).add(orphan)
                assert await other.resend_due() == 1
                await other.drain()
                assert await client.hlen(alerts.pending_key(settings.env)) == 0
                assert await client.zcard(alerts.pending_due_key(settings.env)) == 0
        finally:
            await client.aclose()
    assert [d.body["alertId"] for d in hook.delivered] == [alert.alert_id, "orphan:daily:x:0.5"]
    assert all(d.headers["x-omniroute-alert-id"] == d.body["alertId"] for d in hook.delivered)

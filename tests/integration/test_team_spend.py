"""Accounting and team budgets, against real Postgres, Redis and NATS: three accounting replicas
ingest usage events that carry the key's team and person; each row keeps them, the team's spend
counters (daily, weekly, monthly) equal the sum of its rows whatever the redeliveries, the team's
thresholds alert once each on NATS however the replicas race, and the rebuild from Postgres
raises a lost team counter back."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import redis.asyncio as redis
from nats.aio.client import Client
from nats.aio.msg import Msg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from omniroute.bus.connection import ensure_stream
from omniroute.settings import Settings
from omniroute.shared_state import budget
from omniroute_accounting import maintenance
from tests.integration.accounting_support import publish, running_accounting, usage_event
from tests.support import REDIS_URL

TEAM = "ml"
LIMIT_USD = 0.1


async def _seed(database_url: str, keys: list[str], team: str = TEAM) -> None:
    """A team (`ml` unless said) with a $0.10 daily budget (alerts at 50/80/100 %) and its keys.
    The module's tests share one database: each uses a team of its own."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        name = "Machine learning" if team == TEAM else f"Machine learning ({team})"
        await conn.execute("INSERT INTO teams (id, name, budget) VALUES (%s, %s, %s)",
                           (team, name, Jsonb({"limit": LIMIT_USD, "period": "daily", "alertAt": [0.5, 0.8, 1.0]})))
        for key in keys:
            await conn.execute("INSERT INTO api_keys (id, name, key_hash, key_prefix, team_id) "
                               "VALUES (%s, %s, %s, 'sk-', %s)", (key, f"name-{key}", f"hash-{key}", team))


async def wait_rows(database_url: str, prefix: str, expected: int, within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    while True:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            [(found,)] = await (await conn.execute("SELECT count(*) FROM usage WHERE request_id LIKE %s",
                                                   (prefix + "%",))).fetchall()
        if found >= expected:
            return
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


async def _counters(client: redis.Redis, env: str, owner: str) -> dict[str, int]:
    now = datetime.now(UTC)
    return {period: int(await client.get(budget.spend_key(env, owner, period, budget.period_bounds(period, now)[0]))
                        or 0) for period in budget.PERIODS}


async def test_three_replicas_count_team_spend_once_and_alert_each_threshold_once(
        settings: Settings, database_url: str, nats_client: Client) -> None:
    keys = [f"key_team_{i}_{settings.env}" for i in range(2)]
    await _seed(database_url, keys)
    alerts: list[dict[str, Any]] = []

    async def on_alert(message: Msg) -> None:
        alerts.append(json.loads(message.data))

    subscription = await nats_client.subscribe(settings.subject("budget.alert"), cb=on_alert)
    await ensure_stream(nats_client, settings)
    # gpt-4o, 1000 in + 500 out: under a cent each; 40 of them pass the team's $0.10.
    events = [usage_event(f"team-{settings.env}-{i}", key=keys[i % 2], team_id=TEAM,
                          person_id="person_ana" if i % 2 == 0 else "") for i in range(40)]
    await publish(nats_client, settings, events)
    await publish(nats_client, settings, events[::3], msg_id_suffix="#again")  # redeliveries
    async with running_accounting(settings, nats_client, database_url, replicas=3, batch=7, alerting=True):
        await wait_rows(database_url, f"team-{settings.env}-", 40)
        await wait_drained(nats_client, settings)
        deadline = time.monotonic() + 5
        while len(alerts) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # a duplicate would arrive now
    await subscription.unsubscribe()

    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        rows = await (await conn.execute(
            "SELECT key_id, team_id, person_id, cost_usd FROM usage WHERE request_id LIKE %s",
            (f"team-{settings.env}-%",))).fetchall()
    assert len(rows) == 40 and {row[1] for row in rows} == {TEAM}
    assert {(row[0], row[2]) for row in rows} == {(keys[0], "person_ana"), (keys[1], "")}
    total = sum((Decimal(row[3]) for row in rows), Decimal(0))
    assert total > Decimal(str(LIMIT_USD))
    client = redis.from_url(REDIS_URL)
    try:
        team_counters = await _counters(client, settings.env, budget.team_owner(TEAM))
        assert team_counters == {p: int(total * budget.NANOS_PER_USD) for p in budget.PERIODS}
        key_sums = [sum((Decimal(r[3]) for r in rows if r[0] == key), Decimal(0)) for key in keys]
        for key, key_sum in zip(keys, key_sums, strict=True):
            assert (await _counters(client, settings.env, key))["daily"] == int(key_sum * budget.NANOS_PER_USD)
    finally:
        await client.aclose()
    assert sorted(alert["threshold"] for alert in alerts) == [0.5, 0.8, 1.0]
    for alert in alerts:
        assert (alert["scope"], alert["teamId"], alert["keyId"], alert["period"]) == ("team", TEAM, "", "daily")
        assert alert["alertId"].startswith(f"team:{TEAM}:daily:")
        assert alert["text"].startswith("OmniRoute budget alert: Team Machine learning (ml) has spent")


async def test_a_lost_team_counter_is_rebuilt_from_postgres(
        settings: Settings, database_url: str, nats_client: Client) -> None:
    keys = [f"key_rb_{i}_{settings.env}" for i in range(2)]
    await _seed(database_url, keys, team="ml-rebuild")
    await ensure_stream(nats_client, settings)
    events = [usage_event(f"teamrb-{settings.env}-{i}", key=keys[i % 2], team_id="ml-rebuild") for i in range(6)]
    await publish(nats_client, settings, events)
    async with running_accounting(settings, nats_client, database_url):
        await wait_rows(database_url, f"teamrb-{settings.env}-", 6)
    client = redis.from_url(REDIS_URL)
    owner = budget.team_owner("ml-rebuild")
    try:
        before = await _counters(client, settings.env, owner)
        assert before["daily"] > 0
        now = datetime.now(UTC)
        for period in budget.PERIODS:
            await client.delete(budget.spend_key(settings.env, owner, period, budget.period_bounds(period, now)[0]))
        configured = Settings(env=settings.env, database_url=database_url, redis_url=REDIS_URL)
        async with AsyncConnectionPool(database_url, min_size=1, max_size=1) as pool:
            # The team's three periods, and any counters of the module's other test (same database).
            assert await maintenance.rebuild_spend(configured, pool, client) >= 3
        assert await _counters(client, settings.env, owner) == before
    finally:
        await client.aclose()

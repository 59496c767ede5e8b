"""The admin usage / pricing / budget / telemetry / health endpoints, in process (the real admin
app and lifespan) against a temp database, Redis and NATS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
import redis.asyncio as redis

from omniroute.analytics_store import LatencyStore, SessionStore
from omniroute.settings import Settings
from omniroute.shared_state import budget, budget_holds
from omniroute.store import usage_repo
from omniroute_admin.app import create_app
from tests.integration.accounting_support import usage_event
from tests.support import REDIS_URL

PASSWORD = "accounting-test-password"


@pytest.fixture
async def admin(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    config = Settings(**{**{f: getattr(settings, f) for f in settings.__slots__},  # type: ignore[attr-defined]
                         "initial_password": PASSWORD, "config_file": "",
                         "edge_health_url": "http://127.0.0.1:9/healthz"})
    app = create_app(config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            login = await client.post("/api/auth/login", json={"password": PASSWORD})
            assert login.status_code == 200, login.text
            client.headers["Authorization"] = f"Bearer {login.json()['token']}"
            client.cookies.clear()  # Bearer only: no CSRF token needed for writes
            yield client
    cleanup = redis.from_url(REDIS_URL)
    async for key in cleanup.scan_iter(match=f"{settings.env}:*"):
        await cleanup.delete(key)
    await cleanup.aclose()


async def insert(database_url: str, events: list[Any], cost: str = "0.01") -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await usage_repo.insert_usage(conn, events, {e.request_id: Decimal(cost) for e in events})


async def test_pricing_is_seeded_listed_and_editable(admin: httpx.AsyncClient) -> None:
    listed = (await admin.get("/api/pricing")).json()
    assert listed["unit"] == "USD per million tokens"
    gpt4o = [p for p in listed["pricing"] if p["providerType"] == "openai" and p["model"] == "gpt-4o"]
    assert gpt4o == [{"providerType": "openai", "model": "gpt-4o", "input": 2.5, "output": 10.0,
                      "cached": 1.25, "cacheWrite": None, "reasoning": None, "perImage": {},
                      "perAudioSecond": 0.0, "source": "https://openai.com/api/pricing/"}]
    dalle = [p for p in listed["pricing"] if p["providerType"] == "openai" and p["model"] == "dall-e-3"]
    assert dalle[0]["perImage"]["1024x1024/hd"] == 0.08
    edited = await admin.put("/api/pricing", json={"providerType": "openai", "model": "gpt-4o",
                                                   "input": 2.0, "output": 8.0, "cached": None})
    assert edited.status_code == 200, edited.text
    many = await admin.post("/api/pricing", json={"prices": [
        {"providerType": "*", "model": "house-model", "input": 0.5, "output": 1}]})
    assert many.status_code == 200
    after = (await admin.get("/api/pricing", params={"providerType": "openai", "model": "gpt-4o"})).json()
    assert after["pricing"] == [{"providerType": "openai", "model": "gpt-4o", "input": 2.0,
                                 "output": 8.0, "cached": None, "cacheWrite": None, "reasoning": None,
                                 "perImage": {}, "perAudioSecond": 0.0, "source": ""}]
    media = await admin.put("/api/pricing", json={
        "providerType": "openai", "model": "house-image", "input": 0, "output": 0,
        "perImage": {"*": 0.05, "1024x1024/hd": 0.09}, "perAudioSecond": 0.0001})
    assert media.status_code == 200, media.text
    house = (await admin.get("/api/pricing", params={"model": "house-image"})).json()["pricing"][0]
    assert (house["perImage"], house["perAudioSecond"]) == ({"*": 0.05, "1024x1024/hd": 0.09}, 0.0001)
    bad = await admin.put("/api/pricing", json={"model": "x", "input": -1, "output": 1})
    assert bad.status_code == 400


async def test_budget_set_read_and_exhausted(admin: httpx.AsyncClient, settings: Settings,
                                             database_url: str) -> None:
    created = await admin.post("/api/keys", json={"name": f"budget-{settings.env}"})
    assert created.status_code == 201, created.text
    key_id = created.json()["id"]
    answer = await admin.post("/api/usage/budget", json={"keyId": key_id, "limit": 1.0,
                                                         "period": "monthly", "warnAt": 0.8})
    assert answer.status_code == 200, answer.text
    assert answer.json()["limit"] == 1.0 and answer.json()["exhausted"] is False
    stored = await (await psycopg.AsyncConnection.connect(database_url)).execute(
        "SELECT budget FROM api_keys WHERE id = %s", (key_id,))
    assert (await stored.fetchone() or [None])[0] == {"limit": 1.0, "period": "monthly", "warnAt": 0.8}

    client = redis.from_url(REDIS_URL)
    await budget.record_spend(client, settings.env, [
        budget.Spend("b1", key_id, 1_250_000_000, datetime.now(UTC))])
    await client.aclose()
    status = (await admin.get("/api/usage/budget", params={"keyId": key_id})).json()
    assert status["spent"] == 1.25 and status["exhausted"] is True and status["remaining"] == 0
    assert status["held"] == 0 and status["timezone"] == "UTC"
    assert status["resetsAt"] == budget.period_bounds("monthly", datetime.now(UTC))[1].isoformat()
    # A request in flight holds its worst case: shown beside the spend.
    client = redis.from_url(REDIS_URL)
    await budget_holds.BudgetHolds(client, settings.env).reserve(
        key_id, "in-flight", "unused-counter", 10_000_000_000, 300_000_000, 60)
    await client.aclose()
    assert (await admin.get("/api/usage/budget", params={"keyId": key_id})).json()["held"] == 0.3
    everything = (await admin.get("/api/usage/budget")).json()["budgets"]
    assert any(b["keyId"] == key_id for b in everything)
    missing = await admin.post("/api/usage/budget", json={"keyId": "nope", "limit": 1})
    assert missing.status_code == 404
    assert (await admin.post("/api/usage/budget", json={"keyId": key_id, "limit": 5,
                                                        "period": "yearly"})).status_code == 400


async def test_history_logs_request_logs_and_connection_usage(
        admin: httpx.AsyncClient, settings: Settings, database_url: str) -> None:
    base = datetime(2025, 2, 3, 9, 0, tzinfo=UTC)
    provider = f"p{settings.env}"
    events = [usage_event(f"api-{settings.env}-{i}", key="ka" if i % 2 else "kb", provider=provider,
                          connection="main", model="gpt-4o", started=base + timedelta(minutes=25 * i))
              for i in range(6)]
    await insert(database_url, events)
    window = {"from": base.isoformat(), "to": (base + timedelta(hours=3)).isoformat()}

    history = (await admin.get("/api/usage/history", params={
        **window, "bucket": "hour", "provider": provider, "groupBy": "key"})).json()
    assert [(b["start"][11:13], b["key"], b["requests"]) for b in history["buckets"]] == [
        ("09", "ka", 1), ("09", "kb", 2), ("10", "ka", 1), ("10", "kb", 1), ("11", "ka", 1)]
    assert history["totals"]["requests"] == 6 and history["totals"]["costUsd"] == pytest.approx(0.06)

    logs = (await admin.get("/api/usage/logs", params={**window, "provider": provider})).json()
    assert logs["count"] == 6 and f"{provider}/gpt-4o" in logs["logs"][0]

    first = (await admin.get("/api/usage/request-logs", params={**window, "provider": provider,
                                                                "limit": 4})).json()
    assert [r["requestId"] for r in first["requests"]] == [f"api-{settings.env}-{i}" for i in (5, 4, 3, 2)]
    assert first["detailedLogging"] is False
    rest = (await admin.get("/api/usage/request-logs", params={
        **window, "provider": provider, "limit": 4, **first["next"]})).json()
    assert [r["requestId"] for r in rest["requests"]] == [f"api-{settings.env}-{i}" for i in (1, 0)]

    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute("INSERT INTO providers (id, type) VALUES (%s, 'openai')", (provider,))
        await conn.execute("INSERT INTO connections (id, provider_id, name) VALUES (%s, %s, 'main')",
                           (f"conn-{settings.env}", provider))
        await conn.commit()
    by_id = (await admin.get(f"/api/usage/conn-{settings.env}", params=window)).json()
    assert (by_id["provider"], by_id["connection"]) == (provider, "main")
    assert by_id["totals"]["requests"] == 6
    assert [(m["model"], m["requests"]) for m in by_id["byModel"]] == [("gpt-4o", 6)]
    assert (await admin.get("/api/usage/history", params={"from": "yesterday"})).status_code == 400


async def test_telemetry_sessions_and_health(admin: httpx.AsyncClient, settings: Settings) -> None:
    client = redis.from_url(REDIS_URL)
    # Ended a few seconds ago, as real events have: with started = now, the latencies below put
    # some ends in the next minute, which a read still inside this minute rightly leaves out.
    started = datetime.now(UTC) - timedelta(seconds=5)
    events = [usage_event(f"tel{i}", provider="claudeCode", key="key-s", started=started)
              for i in range(10)]
    for index, event in enumerate(events, start=1):
        event.latency_ms = index * 100.0
    await LatencyStore(client, settings.env).record(events)
    await SessionStore(client, settings.env).record(events)
    await client.aclose()

    summary = (await admin.get("/api/telemetry/summary", params={"window": 600})).json()
    assert summary["providers"] == {"claudeCode": {"p50": 500.0, "p95": 1000.0, "p99": 1000.0,
                                                   "count": 10}}
    sessions = (await admin.get("/api/telemetry/sessions")).json()
    assert [(s["keyId"], s["requests"]) for s in sessions["sessions"]] == [("key-s", 10)]

    health = (await admin.get("/api/monitoring/health")).json()
    services = health["services"]
    for store in ("postgres", "redis", "nats"):
        assert services[store]["up"] is True and services[store]["version"], store
    assert services["edge"]["up"] is False and "error" in services["edge"]  # nothing listens there
    assert health["status"] == "degraded"

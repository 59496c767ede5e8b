"""The accounting process itself (`python -m omniroute_accounting`): 10 000 events, each
published twice, the process killed with SIGKILL midway and restarted → exactly one row per
event, exact token and cost sums and spend counters; the restarted process serves the Prometheus
metrics named in deploy/grafana/README.md with the values of the rows it inserted."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis.asyncio as redis
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig
from prometheus_client.parser import text_string_to_metric_families

from omniroute.bus.connection import ensure_stream
from omniroute.devstack.stack import free_port
from omniroute.settings import Settings
from omniroute.shared_state import budget
from omniroute.v1 import events_pb2
from tests.integration.accounting_support import expected_cost, publish, usage_event
from tests.integration.test_accounting_pipeline import count, counters, wait_drained, wait_rows
from tests.support import REDIS_URL


def start_accounting(settings: Settings, log: Path, metrics_port: int | None = None
                     ) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMNIROUTE_ENV": settings.env, "DATABASE_URL": settings.database_url,
           "REDIS_URL": settings.redis_url, "NATS_URL": settings.nats_url,
           "ACCOUNTING_PORT": str(free_port()), "OTEL_METRICS_EXPORTER": "none"}
    if metrics_port is not None:
        env |= {"OTEL_METRICS_EXPORTER": "prometheus", "OMNIROUTE_METRICS_PORT": str(metrics_port)}
    return subprocess.Popen([sys.executable, "-m", "omniroute_accounting"], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def samples(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Prometheus text → {sample name: {labels without the otel_scope_* ones: value}}."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if not k.startswith("otel_")))
            out[sample.name][labels] = sample.value
    return out


def total(series: dict[tuple[tuple[str, str], ...], float], **match: str) -> float:
    return sum(value for labels, value in series.items() if match.items() <= dict(labels).items())


def varied_event(prefix: str, i: int) -> events_pb2.UsageEvent:
    """Every 20th a cache hit of each kind, every 10th a fallback that worked, every 50th a
    budget refusal (429, no tokens), every 4th streamed with a time to first token."""
    fields: dict[str, Any] = {}
    if i % 20 in (1, 11):
        fields |= {"cache_hit": True, "cache_kind": "exact" if i % 20 == 1 else "semantic"}
    if i % 10 == 2:
        fields["failed_attempts"] = ["anthropic/conn-a:503", "openai/conn-b:429"]
    if i % 4 == 0:
        fields |= {"stream": True, "ttft_ms": 150.0}
    if i % 50 == 3:
        return usage_event(f"{prefix}{i}", key=f"key-{i % 2}", model="gpt-4o-mini", input_tokens=0,
                           output_tokens=0, status=429, error_class="budget_exhausted")
    return usage_event(f"{prefix}{i}", key=f"key-{i % 2}", model="gpt-4o-mini",
                       input_tokens=2000 + i, output_tokens=300 + i % 7, cached=i % 3 * 100, **fields)


async def test_killed_midway_and_restarted_exactly_once_and_metrics_exported(
        settings: Settings, nats_client: Client, database_url: str, tmp_path: Path) -> None:
    """The issue's proof at full size: 10 000 events, each published twice (distinct message
    ids, so JetStream stores and delivers both), accounting SIGKILLed midway and restarted."""
    await ensure_stream(nats_client, settings)
    # The durable as consume() makes it, but with a 3 s ack_wait instead of 30 s, so that the
    # killed process's unacked batch comes back within the test (consume() reuses a durable).
    await nats_client.jetstream().add_consumer(settings.stream_name, ConsumerConfig(
        durable_name="accounting", ack_policy=AckPolicy.EXPLICIT, ack_wait=3, max_ack_pending=20_000,
        filter_subject=settings.subject("usage.>")))
    prefix = f"proc-{settings.env}-"
    n = 10_000
    events = [varied_event(prefix, i) for i in range(n)]
    await publish(nats_client, settings, events)
    await publish(nats_client, settings, events, msg_id_suffix="#again")  # one duplicate of each

    first = start_accounting(settings, tmp_path / "accounting.log")
    try:
        await wait_rows(database_url, prefix, 1500, within_s=30)
    finally:
        first.send_signal(signal.SIGKILL)  # no graceful anything: batches in flight are lost
        first.wait(10)
    before = await request_ids(database_url, prefix)
    assert 0 < len(before) < n

    metrics_port = free_port()
    second = start_accounting(settings, tmp_path / "accounting.log", metrics_port)
    try:
        await wait_rows(database_url, prefix, n, within_s=40)
        await wait_drained(nats_client, settings, within_s=15)
        # The lag gauge is polled every 5 s: wait until it reports the drained consumer.
        deadline = time.monotonic() + 8
        while samples(text := scrape(metrics_port))["omniroute_consumer_lag"].get(
                (("consumer", "accounting"),)) != 0:
            assert time.monotonic() < deadline, "omniroute_consumer_lag never reached 0"
            await asyncio.sleep(0.3)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(15)
    assert await count(database_url, prefix) == n

    # Exact sums in Postgres (cost computed independently; a cache hit costs nothing).
    prices = {"gpt-4o-mini": ("0.15", "0.60", "0.075")}
    costs = {e.request_id: Decimal(0) if e.cache_hit else expected_cost(e, prices) for e in events}
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        row = await (await conn.execute(
            "SELECT sum(input_tokens), sum(output_tokens), sum(cached_tokens), sum(cost_usd) "
            "FROM usage WHERE request_id LIKE %s", (prefix + "%",))).fetchone()
    assert row is not None
    assert row[0] == sum(e.usage.input_tokens for e in events)
    assert row[1] == sum(e.usage.output_tokens for e in events)
    assert row[2] == sum(e.usage.cached_tokens for e in events)
    assert row[3] == sum(costs.values())

    spend: dict[str, Decimal] = defaultdict(Decimal)
    for event in events:
        spend[event.key_id] += costs[event.request_id]
    client = redis.from_url(REDIS_URL)
    try:
        for key, expected in spend.items():
            assert (await counters(client, settings, key))["monthly"] == int(expected * budget.NANOS_PER_USD)
    finally:
        async for name in client.scan_iter(match=f"{settings.env}:*"):
            await client.delete(name)
        await client.aclose()

    # The restarted process counted exactly the rows it inserted, each once.
    mine = [e for e in events if e.request_id not in before]
    got = samples(text)
    assert total(got["omniroute_requests_total"]) == len(mine)
    assert total(got["omniroute_requests_total"], status="429") == sum(e.status == 429 for e in mine)
    assert total(got["omniroute_tokens_total"], direction="input") == sum(e.usage.input_tokens for e in mine)
    assert total(got["omniroute_key_requests_total"], key="key-0") == sum(e.key_id == "key-0" for e in mine)
    assert total(got["omniroute_cost_usd_total"]) == pytest.approx(
        float(sum(costs[e.request_id] for e in mine)), rel=1e-9)
    assert total(got["omniroute_time_to_first_token_seconds_count"]) == sum(e.ttft_ms > 0 for e in mine)
    for kind in ("exact", "semantic"):
        assert total(got["omniroute_cache_hits_total"], kind=kind) == sum(e.cache_kind == kind for e in mine)
    answered_fallbacks = [e for e in mine if e.failed_attempts and e.status < 400]
    assert total(got["omniroute_fallback_requests_total"]) == len(answered_fallbacks)
    assert total(got["omniroute_fallbacks_total"]) == 2 * len(answered_fallbacks)
    assert total(got["omniroute_rate_limit_rejections_total"], reason="budget") == \
        sum(e.status == 429 for e in mine)
    assert total(got["gen_ai_client_inference_usage_input_tokens_total"]) == \
        sum(e.usage.input_tokens for e in mine)
    for series in ("omniroute_request_duration_seconds_bucket",
                   "gen_ai_client_inference_operation_input_tokens_bucket",
                   "gen_ai_client_inference_operation_output_tokens_bucket",
                   "gen_ai_client_operation_duration_seconds_bucket", "omniroute_consumer_redelivered"):
        assert got[series], series


async def request_ids(database_url: str, prefix: str) -> set[str]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        rows = await (await conn.execute("SELECT request_id FROM usage WHERE request_id LIKE %s",
                                         (prefix + "%",))).fetchall()
    return {row[0] for row in rows}

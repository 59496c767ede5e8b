"""The accounting process itself (`python -m omniroute_accounting`): killed with SIGKILL midway
and restarted, every event ends as exactly one row and the spend counters are exact; the
restarted process serves the Prometheus metrics named in deploy/grafana/README.md."""

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

import redis.asyncio as redis
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig

from omniroute.bus.connection import ensure_stream
from omniroute.devstack.stack import free_port
from omniroute.limits import budget
from omniroute.settings import Settings
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


async def test_killed_midway_and_restarted_exactly_once_and_metrics_exported(
        settings: Settings, nats_client: Client, database_url: str, tmp_path: Path) -> None:
    await ensure_stream(nats_client, settings)
    # The durable as consume() makes it, but with a 3 s ack_wait instead of 30 s, so that the
    # killed process's unacked batch comes back within the test (consume() reuses a durable).
    await nats_client.jetstream().add_consumer(settings.stream_name, ConsumerConfig(
        durable_name="accounting", ack_policy=AckPolicy.EXPLICIT, ack_wait=3, max_ack_pending=20_000,
        filter_subject=settings.subject("usage.>")))
    prefix = f"proc-{settings.env}-"
    events = [usage_event(f"{prefix}{i}", key=f"key-{i % 2}", model="gpt-4o-mini",
                          input_tokens=2000 + i, output_tokens=300, cached=i % 3 * 100)
              for i in range(3000)]
    await publish(nats_client, settings, events)
    await publish(nats_client, settings, events[:500], msg_id_suffix="#again")  # redeliveries

    first = start_accounting(settings, tmp_path / "accounting.log")
    try:
        await wait_rows(database_url, prefix, 1, within_s=20)
    finally:
        first.send_signal(signal.SIGKILL)  # no graceful anything: batches in flight are lost
        first.wait(10)
    assert await count(database_url, prefix) < 3000

    metrics_port = free_port()
    second = start_accounting(settings, tmp_path / "accounting.log", metrics_port)
    try:
        await wait_rows(database_url, prefix, 3000, within_s=30)
        await wait_drained(nats_client, settings, within_s=15)
        deadline = time.monotonic() + 5
        while "omniroute_requests_total" not in (text := scrape(metrics_port)):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(15)
    assert await count(database_url, prefix) == 3000

    prices = {"gpt-4o-mini": ("0.15", "0.60", "0.075")}
    spend: dict[str, Decimal] = defaultdict(Decimal)
    for event in events:
        spend[event.key_id] += expected_cost(event, prices)
    client = redis.from_url(REDIS_URL)
    try:
        for key, total in spend.items():
            assert (await counters(client, settings, key))["monthly"] == int(total * budget.NANOS_PER_USD)
    finally:
        async for name in client.scan_iter(match=f"{settings.env}:*"):
            await client.delete(name)
        await client.aclose()

    for series in ('omniroute_requests_total{', 'status="200"', 'omniroute_request_duration_seconds_bucket{',
                   'omniroute_tokens_total{', 'direction="input"', 'direction="output"',
                   'omniroute_cost_usd_total{', 'provider="openai"', 'model="gpt-4o-mini"',
                   'gen_ai_client_token_usage'):
        assert series in text, series

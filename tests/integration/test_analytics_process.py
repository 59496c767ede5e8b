"""The analytics process (`python -m omniroute_analytics`) exports the gauges it polls: the
breaker state of each connection (from Redis) and the lag of its own durable consumer."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis.asyncio as redis
from nats.aio.client import Client

from omniroute.bus.connection import ensure_stream
from omniroute.config.routing_spec import ResilienceProfile
from omniroute.devstack.stack import free_port
from omniroute.settings import Settings
from omniroute.shared_state import breaker
from tests.integration.accounting_support import publish, usage_event
from tests.integration.test_accounting_process import samples, scrape


def start_analytics(settings: Settings, log: Path, metrics_port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMNIROUTE_ENV": settings.env, "REDIS_URL": settings.redis_url,
           "NATS_URL": settings.nats_url, "ANALYTICS_PORT": str(free_port()),
           "OTEL_METRICS_EXPORTER": "prometheus", "OMNIROUTE_METRICS_PORT": str(metrics_port)}
    return subprocess.Popen([sys.executable, "-m", "omniroute_analytics"], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


async def test_breaker_and_lag_gauges_on_metrics(settings: Settings, nats_client: Client,
                                                 tmp_path: Path) -> None:
    await ensure_stream(nats_client, settings)
    client = redis.from_url(settings.redis_url)
    breakers = breaker.Breakers(client, settings.env)
    profile = ResilienceProfile(failure_threshold=2, degraded_threshold=1)
    for _ in range(2):
        await breakers.record("conn-down", False, profile)
    await publish(nats_client, settings, [usage_event(f"an-{settings.env}-{i}") for i in range(20)])
    port = free_port()
    process = start_analytics(settings, tmp_path / "analytics.log", port)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                got = samples(scrape(port))
            except OSError:  # not listening yet
                got = {}
            lag = got.get("omniroute_consumer_lag", {}).get((("consumer", "analytics"),))
            state = got.get("omniroute_breaker_state", {}).get((("connection", "conn-down"),))
            if lag == 0 and state == 3:  # drained its 20 events; the breaker is open
                break
            assert time.monotonic() < deadline, f"lag={lag} breaker={state}"
            await asyncio.sleep(0.3)
        assert got["omniroute_breaker_failures"][(("connection", "conn-down"),)] == 2
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(15)
        await breakers.reset()
        await client.aclose()

"""Usage events over real JetStream into real Postgres: durable, acked after commit, and
idempotent on request id (a duplicate publish or a redelivery leaves one row)."""

from __future__ import annotations

import asyncio
import time

import psycopg
import redis.asyncio as redis
from nats.aio.client import Client
from nats.aio.msg import Msg

from omniroute.analytics_store import LatencyStore, SessionStore
from omniroute.bus.connection import ensure_stream
from omniroute.bus.consumer import consume
from omniroute.bus.publisher import EventPublisher
from omniroute.settings import Settings
from omniroute.store.usage_repo import insert_usage
from omniroute.v1 import common_pb2, events_pb2
from tests.support import REDIS_URL


def usage_event(request_id: str, provider: str = "p", latency: float = 12.5) -> events_pb2.UsageEvent:
    event = events_pb2.UsageEvent(request_id=request_id, key_id="k", provider=provider, model="m",
                                  usage=common_pb2.Usage(input_tokens=5, output_tokens=7),
                                  status=200, latency_ms=latency)
    event.started_at.GetCurrentTime()
    return event


async def count_rows(database_url: str, prefix: str) -> int:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        row = await (await conn.execute("SELECT count(*) FROM usage WHERE request_id LIKE %s",
                                        (prefix + "%",))).fetchone()
        return int(row[0]) if row else 0


async def test_events_reach_postgres_once_despite_duplicates_and_a_failed_commit(
        settings: Settings, nats_client: Client) -> None:
    await ensure_stream(nats_client, settings)
    publisher = EventPublisher(nats_client)
    publisher.start()
    for index in range(20):
        payload = usage_event(f"dup-{index}").SerializeToString()
        publisher.publish(settings.subject("usage.chat"), payload, msg_id=f"dup-{index}")
        publisher.publish(settings.subject("usage.chat"), payload, msg_id=f"dup-{index}")  # retried
    await publisher.close()
    assert publisher.pending == 0

    attempts = 0

    async def handle(messages: list[Msg]) -> None:
        nonlocal attempts
        attempts += 1
        events = []
        for message in messages:
            event = events_pb2.UsageEvent()
            event.ParseFromString(message.data)
            events.append(event)
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn, \
                conn.transaction():
            await insert_usage(conn, events)
            if attempts == 1:
                raise RuntimeError("the commit fails once")  # rolled back, so the batch is nak'ed

    stop = asyncio.Event()
    task = asyncio.create_task(consume(nats_client, settings, durable="accounting",
                                       subject_suffix="usage.>", handle=handle, stop=stop, batch=50))
    deadline = time.monotonic() + 15
    while await count_rows(settings.database_url, "dup-") < 20 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    # Redelivery of anything must not add rows.
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        again = [usage_event(f"dup-{i}") for i in range(20)]
        assert await insert_usage(conn, again) == 0
    stop.set()
    await task
    assert attempts >= 2
    assert await count_rows(settings.database_url, "dup-") == 20
    info = await nats_client.jetstream().consumer_info(settings.stream_name, "accounting")
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_publisher_buffers_while_nats_is_unreachable(settings: Settings, nats_client: Client) -> None:
    """A publish that fails is kept and retried, not dropped (order does not matter: rows are
    keyed by request id)."""
    await ensure_stream(nats_client, settings)
    publisher = EventPublisher(nats_client)
    sent: list[str] = []
    failures = 3

    async def flaky_send(event: object) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("NATS away")
        sent.append(event.msg_id)  # type: ignore[attr-defined]

    publisher._send = flaky_send  # type: ignore[method-assign]
    publisher.start()
    for index in range(5):
        publisher.publish("x", b"", msg_id=str(index))
    await publisher.close(timeout=10)
    assert sorted(sent) == ["0", "1", "2", "3", "4"]


async def test_latency_store_percentiles_from_redis(settings: Settings) -> None:
    client = redis.from_url(REDIS_URL)
    store = LatencyStore(client, settings.env)
    await store.record([usage_event(f"l{i}", provider="prov", latency=float(i)) for i in range(1, 101)])
    summary = await store.summary()
    assert summary == {"prov": {"p50": 50.0, "p95": 95.0, "p99": 99.0, "count": 100}}
    async for key in client.scan_iter(match=f"{settings.env}:*"):
        await client.delete(key)
    await client.aclose()


async def test_analytics_keys_expire_a_minute_after_their_window(settings: Settings) -> None:
    """Every key the analytics stores write (samples, provider list, last-seen, per-minute
    counts) has a TTL of window + 60 s, refreshed by each write: nothing lives forever."""
    client = redis.from_url(REDIS_URL)
    window_s = 600
    await LatencyStore(client, settings.env, max_age_s=window_s).record([usage_event("e1", provider="prov")])
    await SessionStore(client, settings.env, max_age_s=window_s).record([usage_event("e2")])
    keys = sorted([key.decode() async for key in client.scan_iter(match=f"{settings.env}:*")])
    ttls = {key.removeprefix(settings.env): await client.ttl(key) for key in keys}
    await client.aclose()
    assert set(ttls) >= {":latency:providers", ":latency:z:prov", ":sessions:seen"}
    assert all(window_s < ttl <= window_s + 60 for ttl in ttls.values()), ttls

"""Helpers for the accounting integration tests: events, a running accounting consumer, and a
TCP proxy in front of Postgres that can be cut and restored (a Postgres outage on demand)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from decimal import Decimal

import redis.asyncio as redis
from nats.aio.client import Client
from psycopg_pool import AsyncConnectionPool

from omniroute.bus.consumer import consume
from omniroute.settings import Settings
from omniroute.v1 import common_pb2, events_pb2
from omniroute_accounting.alerting import BudgetAlerts
from omniroute_accounting.prices import PriceSource
from omniroute_accounting.recorder import Recorder


def usage_event(request_id: str, *, key: str = "key-a", provider: str = "openai",
                model: str = "gpt-4o", input_tokens: int = 1000, output_tokens: int = 500,
                cached: int = 0, reasoning: int = 0, status: int = 200,
                started: datetime | None = None, **fields: object) -> events_pb2.UsageEvent:
    event = events_pb2.UsageEvent(
        request_id=request_id, key_id=key, provider=provider, model=model, status=status,
        usage=common_pb2.Usage(input_tokens=input_tokens, output_tokens=output_tokens,
                               cached_tokens=cached, reasoning_tokens=reasoning),
        latency_ms=120.0, **fields)  # type: ignore[arg-type]
    if started is None:
        event.started_at.GetCurrentTime()
    else:
        event.started_at.FromDatetime(started)
    return event


async def publish(client: Client, settings: Settings, events: list[events_pb2.UsageEvent],
                  *, msg_id_suffix: str = "") -> None:
    """Publish concurrently; a distinct msg id suffix stores a second copy (a redelivery)."""
    js = client.jetstream()
    subject = settings.subject("usage.chat")
    for start in range(0, len(events), 200):
        await asyncio.gather(*(
            js.publish(subject, event.SerializeToString(),
                       headers={"Nats-Msg-Id": event.request_id + msg_id_suffix})
            for event in events[start:start + 200]))


@contextlib.asynccontextmanager
async def running_accounting(settings: Settings, nats_client: Client, database_url: str,
                             *, replicas: int = 1, batch: int = 100, pool_timeout: float = 30.0,
                             alerting: bool = False) -> AsyncIterator[list[Recorder]]:
    """`replicas` recorders sharing the durable consumer, each with its own pool and Redis (and,
    with `alerting`, its own budget alert checker, as accounting's main wires it)."""
    stop = asyncio.Event()
    pools: list[AsyncConnectionPool] = []
    clients: list[redis.Redis] = []
    recorders: list[Recorder] = []
    tasks = []
    for _ in range(replicas):
        pool = AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False,
                                   timeout=pool_timeout, reconnect_timeout=3600)
        await pool.open()
        pools.append(pool)
        client = redis.from_url(settings.redis_url)
        clients.append(client)
        prices = PriceSource(pool, settings)
        await prices.start()
        await prices.stop()  # no periodic refresh in tests
        alerts = BudgetAlerts(settings, pool, client, nats_client) if alerting else None
        recorder = Recorder(settings, pool, client, lambda p=prices: p.current,  # type: ignore[misc]
                            alerts=alerts)
        recorders.append(recorder)
        tasks.append(asyncio.create_task(consume(
            nats_client, settings, durable="accounting", subject_suffix="usage.>",
            handle=recorder.handle, stop=stop, batch=batch)))
    try:
        yield recorders
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for pool in pools:
            await pool.close()
        for client in clients:
            await client.aclose()


class PostgresProxy:
    """127.0.0.1:<port> → Postgres. `cut()` closes the listener and every open connection (what
    accounting sees when Postgres goes down); `restore()` listens again on the same port."""

    def __init__(self, target_port: int = 5432) -> None:
        self._target_port = target_port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                             return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()
            self._writers.discard(writer)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        await self.start()


def expected_cost(event: events_pb2.UsageEvent,
                  prices: Mapping[str, tuple[str, str, str | None]]) -> Decimal:
    """Independent arithmetic: (input, output, cached) USD per million tokens by model."""
    if event.model not in prices:
        return Decimal(0)
    inp, out, cached = (Decimal(v) if v is not None else None for v in prices[event.model])
    assert inp is not None and out is not None
    usage = event.usage
    cached_price = inp if cached is None else cached
    total = ((usage.input_tokens - usage.cached_tokens) * inp + usage.cached_tokens * cached_price
             + usage.output_tokens * out) / Decimal(1_000_000)
    return total.quantize(Decimal("0.000000001"))

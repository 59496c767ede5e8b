"""The router's usage publisher while NATS is away: events wait in a buffer bounded by size and
age, what falls outside is dropped, counted (omniroute.events.dropped, by reason) and logged once
when dropping starts and once when it ends; what the buffer holds arrives when NATS is back; a
publisher that stops while NATS is away says how many events it lost.

NATS here is a server of the test's own, on a free port: it is stopped and started again, which
the machine's shared server must never be."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from omniroute.bus.connection import connect, ensure_stream
from omniroute.bus.publisher import EventPublisher
from omniroute.devstack.backing import ensure_nats, listening
from omniroute.devstack.stack import free_port
from omniroute.settings import Settings
from omniroute.telemetry.metrics import EventBufferMetrics
from tests.support import unique_name


class OwnNats:
    def __init__(self, state_dir: Path) -> None:
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.state_dir = state_dir
        self.process = ensure_nats(self.url, state_dir)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(15)
            self.process = None

    def start(self) -> None:
        self.process = ensure_nats(self.url, self.state_dir)


@pytest.fixture
def nats_server() -> Iterator[OwnNats]:
    with tempfile.TemporaryDirectory(prefix="omniroute-buffer-") as state_dir:
        server = OwnNats(Path(state_dir))
        yield server
        server.stop()
        assert not listening("127.0.0.1", server.port)


@pytest.fixture
async def client(nats_server: OwnNats) -> AsyncIterator[tuple[Client, Settings]]:
    settings = Settings(env=unique_name("buf"), nats_url=nats_server.url)
    nats_client = await connect(nats_server.url, name="buffer-test")
    await ensure_stream(nats_client, settings)
    yield nats_client, settings
    with contextlib.suppress(OSError):   # nats-py's close fails on a transport the server dropped
        await nats_client.close()


def dropped(reader: InMemoryMetricReader) -> dict[str, int]:
    data = reader.get_metrics_data()
    out: dict[str, int] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "omniroute.events.dropped":
                    for point in metric.data.data_points:
                        out[str((point.attributes or {})["reason"])] = int(point.value)  # type: ignore[union-attr]
    return out


async def until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.05)


async def stored(nats_client: Client, settings: Settings) -> list[str]:
    """The message ids the stream holds."""
    js = nats_client.jetstream()
    info = await js.stream_info(settings.stream_name)
    ids = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        message = await js.get_msg(settings.stream_name, seq)
        ids.append((message.headers or {})["Nats-Msg-Id"])
    return ids


def lines(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if words in r.getMessage()]


async def test_the_buffer_is_bounded_by_size_and_age_and_every_drop_is_counted(
        nats_server: OwnNats, client: tuple[Client, Settings], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="omniroute.bus.publisher")
    nats_client, settings = client
    reader = InMemoryMetricReader()
    now = [1000.0]
    publisher = EventPublisher(nats_client, max_buffer=5, max_age_s=60.0, publish_timeout_s=0.3,
                               metrics=EventBufferMetrics.create(MeterProvider(metric_readers=[reader]).get_meter("t")),
                               clock=lambda: now[0])
    publisher.start()
    subject = settings.subject("usage.test")
    try:
        publisher.publish(subject, b"before", msg_id="before")
        await until(lambda: publisher.pending == 0)
        nats_server.stop()

        # Size: five wait, the next three are dropped; one log line says dropping started.
        for index in range(8):
            publisher.publish(subject, b"x", msg_id=f"full-{index}")
        assert publisher.pending == 5
        assert dropped(reader) == {"buffer_full": 3}
        assert len(lines(caplog, "dropping events (buffer_full)")) == 1

        # Age: the five waited longer than 60 s; the next retry drops them.
        now[0] += 61
        await until(lambda: publisher.pending == 0)
        assert dropped(reader) == {"buffer_full": 3, "too_old": 5}

        # Young events wait for NATS and arrive once it is back; the log says dropping ended.
        for index in range(3):
            publisher.publish(subject, b"y", msg_id=f"kept-{index}")
        nats_server.start()
        await until(lambda: publisher.pending == 0)
        assert sorted(await stored(nats_client, settings)) == ["before", "kept-0", "kept-1", "kept-2"]
        assert lines(caplog, "published again; 8 were dropped meanwhile")
        assert publisher.dropped == 8
    finally:
        await publisher.close(timeout=1.0)


async def test_stopping_while_nats_is_away_says_what_is_lost(
        nats_server: OwnNats, client: tuple[Client, Settings], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="omniroute.bus.publisher")
    nats_client, settings = client
    reader = InMemoryMetricReader()
    publisher = EventPublisher(nats_client, publish_timeout_s=0.3,
                               metrics=EventBufferMetrics.create(MeterProvider(metric_readers=[reader]).get_meter("t")))
    publisher.start()
    nats_server.stop()
    for index in range(4):
        publisher.publish(settings.subject("usage.test"), b"z", msg_id=f"lost-{index}")
    await publisher.close(timeout=1.0)
    assert dropped(reader) == {"shutdown": 4}
    assert lines(caplog, "stopping with 4 unpublished events")


async def test_stopping_flushes_what_nats_takes_back_in_time(
        nats_server: OwnNats, client: tuple[Client, Settings]) -> None:
    """NATS comes back while the publisher is stopping: the buffer is flushed, nothing is lost
    (close retries every 0.1 s instead of sleeping through the publisher's backoff)."""
    nats_client, settings = client
    publisher = EventPublisher(nats_client, publish_timeout_s=0.3)
    publisher.start()
    nats_server.stop()
    for index in range(4):
        publisher.publish(settings.subject("usage.test"), b"w", msg_id=f"flushed-{index}")
    await asyncio.sleep(2.0)   # a few failed attempts: the publisher's backoff has grown

    async def back_soon() -> None:
        await asyncio.sleep(0.5)
        await asyncio.to_thread(nats_server.start)

    await asyncio.gather(back_soon(), publisher.close(timeout=20.0))
    assert publisher.dropped == 0
    assert sorted(await stored(nats_client, settings)) == [f"flushed-{index}" for index in range(4)]


async def test_a_confirmed_publish_returns_once_stored_and_never_waits_through_an_outage(
        nats_server: OwnNats, client: tuple[Client, Settings]) -> None:
    """`publish_confirmed` (a request's usage event: the answer ends after it) returns True only
    once JetStream holds the event. While NATS is away it waits at most `confirm_wait_s` once,
    then not at all until a publish succeeds again; what it buffered meanwhile arrives."""
    nats_client, settings = client
    publisher = EventPublisher(nats_client, publish_timeout_s=0.3, confirm_wait_s=0.5)
    publisher.start()
    subject = settings.subject("usage.test")
    loop = asyncio.get_running_loop()
    try:
        assert await publisher.publish_confirmed(subject, b"a", msg_id="confirmed-1") is True
        assert await stored(nats_client, settings) == ["confirmed-1"]   # already there: no wait

        nats_server.stop()
        began = loop.time()
        assert await publisher.publish_confirmed(subject, b"b", msg_id="outage-1") is False
        assert loop.time() - began < 0.5 + 0.3
        began = loop.time()
        for index in range(2, 5):    # NATS still away: no answer waits for it any more
            assert await publisher.publish_confirmed(subject, b"c", msg_id=f"outage-{index}") is False
        assert loop.time() - began < 0.05

        nats_server.start()
        await until(lambda: publisher.pending == 0)
        assert await publisher.publish_confirmed(subject, b"d", msg_id="confirmed-2") is True
        assert sorted(await stored(nats_client, settings)) == [
            "confirmed-1", "confirmed-2", "outage-1", "outage-2", "outage-3", "outage-4"]
    finally:
        await publisher.close(timeout=1.0)

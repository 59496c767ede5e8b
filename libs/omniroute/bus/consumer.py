"""A durable JetStream pull consumer loop shared by accounting and analytics.

Messages are acked only after `handle` returned (i.e. after the commit); if it raises, the
batch is nak'ed with a delay and comes back, so nothing is lost while a store is down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig

from omniroute.outages import STORE_OUTAGES, describe
from omniroute.settings import Settings

log = logging.getLogger("omniroute.bus.consumer")


async def consume(client: Client, settings: Settings, *, durable: str, subject_suffix: str,
                  handle: Callable[[list[Msg]], Awaitable[None]], stop: asyncio.Event,
                  batch: int = 256, linger_s: float = 0.2) -> None:
    """`linger_s`: after a small batch, wait a little before fetching again, so that at low rates
    events are handled a few at a time rather than one by one (the cost is per batch, and a
    fraction of a second of delay does not matter off the request path)."""
    js = client.jetstream()
    subscription = await js.pull_subscribe(
        settings.subject(subject_suffix), durable=durable, stream=settings.stream_name,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=30, max_ack_pending=20_000))
    while not stop.is_set():
        try:
            messages = await subscription.fetch(batch=batch, timeout=1.0)
        except (TimeoutError, NatsTimeout):
            continue
        except Exception as exc:  # NATS reconnecting: wait and fetch again
            log.warning("fetch failed (%s); retrying", exc)
            await asyncio.sleep(0.5)
            continue
        try:
            await handle(messages)
        except STORE_OUTAGES as exc:   # a store restarting: expected, handled, one line
            log.warning("handling %d messages failed, a store is unreachable (%s); they will be "
                        "redelivered", len(messages), describe(exc))
            for message in messages:
                await _quietly(message.nak(delay=1.0))
            await asyncio.sleep(1.0)
            continue
        except Exception:
            log.exception("handling %d messages failed; they will be redelivered", len(messages))
            for message in messages:
                await _quietly(message.nak(delay=1.0))
            await asyncio.sleep(1.0)
            continue
        for message in messages:
            await _quietly(message.ack())
        if len(messages) < batch // 4 and linger_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), linger_s)
    # A pending pull request would otherwise keep `drain()` waiting on shutdown.
    with contextlib.suppress(Exception):
        await subscription.unsubscribe()


async def _quietly(operation: Awaitable[None]) -> None:
    try:
        await operation
    except Exception as exc:  # a lost ack means a redelivery, which the handlers make harmless
        log.warning("ack/nak failed: %s", exc)

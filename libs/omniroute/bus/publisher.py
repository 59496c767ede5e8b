"""Publishing events to JetStream off the request path: bounded buffer, retries, no loss.

A request only enqueues (no await on NATS). A background task publishes in small concurrent
batches and, if NATS is away, keeps the events and retries, so a short outage loses nothing. Order is not kept across a
retry; consumers key everything by request id.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

from nats.aio.client import Client

log = logging.getLogger("omniroute.bus.publisher")


@dataclass(slots=True)
class OutgoingEvent:
    subject: str
    payload: bytes
    msg_id: str
    headers: dict[str, str]


class EventPublisher:
    def __init__(self, client: Client, *, max_buffer: int = 100_000, batch: int = 64) -> None:
        self._js = client.jetstream()
        self._buffer: deque[OutgoingEvent] = deque()
        self._max_buffer = max_buffer
        self._batch = batch
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight = 0
        self.dropped = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-publisher")

    def publish(self, subject: str, payload: bytes, *, msg_id: str,
                headers: dict[str, str] | None = None) -> None:
        if len(self._buffer) >= self._max_buffer:
            self.dropped += 1  # bounded: memory must not grow without limit in a long outage
            log.error("event buffer full (%d); dropping %s", self._max_buffer, msg_id)
            return
        self._buffer.append(OutgoingEvent(subject, payload, msg_id, headers or {}))
        self._wakeup.set()

    @property
    def pending(self) -> int:
        return len(self._buffer) + self._in_flight

    async def _run(self) -> None:
        delay = 0.1
        while True:
            if not self._buffer:
                self._wakeup.clear()
                await self._wakeup.wait()
            batch = [self._buffer.popleft() for _ in range(min(self._batch, len(self._buffer)))]
            self._in_flight = len(batch)
            results = await asyncio.gather(*(self._send(event) for event in batch),
                                           return_exceptions=True)
            self._in_flight = 0
            failed = [event for event, result in zip(batch, results, strict=True)
                      if isinstance(result, BaseException)]
            if failed:
                self._buffer.extendleft(reversed(failed))  # retried first
                log.warning("publish failed for %d events (%s); retrying in %.1fs",
                            len(failed), next(r for r in results if isinstance(r, BaseException)),
                            delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                delay = 0.1

    async def _send(self, event: OutgoingEvent) -> None:
        headers = {"Nats-Msg-Id": event.msg_id, **event.headers}
        await self._js.publish(event.subject, event.payload, headers=headers, timeout=5.0)

    async def close(self, timeout: float = 5.0) -> None:
        """Flush what is buffered (up to `timeout`), then stop."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.pending and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

"""Publishing events to JetStream off the request path: a bounded buffer, retries, and a loss
that is counted and said when it cannot be avoided.

A request only enqueues (no await on NATS). A background task publishes in small concurrent
batches and, if NATS is away, keeps the events and retries, so a short outage loses nothing.
Order is not kept across a retry; consumers key everything by request id.

The buffer lives in this process's memory, so it is bounded: by size (`max_buffer` events; a
full buffer drops the new event) and by age (an event still unpublished after `max_age_s` is
dropped: it would hold memory for an outage nobody is fixing). A process that stops while NATS
is away loses what its buffer holds (after trying to flush it for `close`'s timeout). Every
drop counts in the `omniroute.events.dropped` counter (`reason`: buffer_full, too_old,
shutdown) and is logged: once when dropping starts, once when it stops, and at shutdown.

`publish_confirmed` is for an event whose loss a caller would notice (a usage row): it waits, up
to `confirm_wait_s`, until JetStream has stored the event, so that a request's answer can end
only after its usage is safe — a process killed right after the answer loses nothing. While
NATS is failing or slow (a send failed, or a wait ran out, and no send has succeeded since) it
does not wait: the event is buffered as any other and answers are not held up by an outage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from nats.aio.client import Client

from omniroute.telemetry.metrics import EventBufferMetrics

log = logging.getLogger("omniroute.bus.publisher")


@dataclass(slots=True)
class OutgoingEvent:
    subject: str
    payload: bytes
    msg_id: str
    headers: dict[str, str]
    queued_at: float = 0.0   # monotonic
    stored: asyncio.Future[bool] | None = None   # publish_confirmed's: True once JetStream acked

    def settle(self, stored: bool) -> None:
        if self.stored is not None and not self.stored.done():
            self.stored.set_result(stored)


class EventPublisher:
    def __init__(self, client: Client, *, max_buffer: int = 100_000, max_age_s: float = 900.0,
                 batch: int = 64, publish_timeout_s: float = 5.0,
                 confirm_wait_s: float = 1.0,
                 metrics: EventBufferMetrics | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._js = client.jetstream()
        self._buffer: deque[OutgoingEvent] = deque()
        self._max_buffer = max_buffer
        self._max_age_s = max_age_s
        self._batch = batch
        self._publish_timeout_s = publish_timeout_s
        self._confirm_wait_s = confirm_wait_s
        self._unconfirmed = False   # NATS failing or slow: publish_confirmed does not wait
        self._metrics = metrics or EventBufferMetrics.create()
        self._clock = clock
        self._wakeup = asyncio.Event()
        self._retry_now = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight = 0
        self.dropped = 0             # since start, every reason
        self._dropping_since = 0     # dropped since dropping last started (0: not dropping)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-publisher")

    def publish(self, subject: str, payload: bytes, *, msg_id: str,
                headers: dict[str, str] | None = None) -> None:
        self._enqueue(OutgoingEvent(subject, payload, msg_id, headers or {}, self._clock()))

    async def publish_confirmed(self, subject: str, payload: bytes, *, msg_id: str,
                                headers: dict[str, str] | None = None) -> bool:
        """Publish, then wait until JetStream stored the event (True), unless NATS is failing or
        slow (False at once, or after `confirm_wait_s`; the event stays buffered either way)."""
        event = OutgoingEvent(subject, payload, msg_id, headers or {}, self._clock())
        if self._unconfirmed or self._task is None:
            self._enqueue(event)
            return False
        event.stored = asyncio.get_running_loop().create_future()
        self._enqueue(event)
        try:
            return await asyncio.wait_for(asyncio.shield(event.stored), self._confirm_wait_s)
        except TimeoutError:
            if not self._unconfirmed:
                log.warning("JetStream has not stored an event within %.1f s; answers no longer wait "
                            "for their usage events until a publish succeeds again", self._confirm_wait_s)
            self._unconfirmed = True
            return False

    def _enqueue(self, event: OutgoingEvent) -> None:
        if len(self._buffer) >= self._max_buffer:
            self._drop(1, "buffer_full")
            event.settle(False)
            return
        self._buffer.append(event)
        self._wakeup.set()

    @property
    def pending(self) -> int:
        return len(self._buffer) + self._in_flight

    def _drop(self, count: int, reason: str) -> None:
        self.dropped += count
        self._metrics.dropped.add(count, {"reason": reason})
        if not self._dropping_since:
            log.error("dropping events (%s): NATS has been unreachable and the buffer holds %d events "
                      "(limits: %d events, %.0f s); these events are lost", reason, len(self._buffer),
                      self._max_buffer, self._max_age_s)
        self._dropping_since += count

    def _stopped_dropping(self) -> None:
        if self._dropping_since:
            log.warning("events are published again; %d were dropped meanwhile", self._dropping_since)
            self._dropping_since = 0

    def _drop_too_old(self) -> None:
        deadline = self._clock() - self._max_age_s
        old = 0
        while self._buffer and self._buffer[0].queued_at < deadline:
            self._buffer.popleft().settle(False)
            old += 1
        if old:
            self._drop(old, "too_old")

    async def _run(self) -> None:
        delay = 0.1
        while True:
            if not self._buffer:
                self._wakeup.clear()
                await self._wakeup.wait()
            self._drop_too_old()
            if not self._buffer:
                continue
            batch = [self._buffer.popleft() for _ in range(min(self._batch, len(self._buffer)))]
            self._in_flight = len(batch)
            results = await asyncio.gather(*(self._send(event) for event in batch),
                                           return_exceptions=True)
            self._in_flight = 0
            failed = []
            for event, result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    failed.append(event)
                event.settle(not isinstance(result, BaseException))  # a failed one is retried unwaited
            if failed:
                self._unconfirmed = True
                self._buffer.extendleft(reversed(failed))  # retried first (oldest first)
                log.warning("publish failed for %d events (%s); %d buffered; retrying in %.1fs",
                            len(failed), next(r for r in results if isinstance(r, BaseException)),
                            len(self._buffer), delay)
                self._retry_now.clear()
                try:   # `close` cuts the wait short: its flush must not sleep through NATS's return
                    await asyncio.wait_for(self._retry_now.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, 5.0)
            else:
                delay = 0.1
                self._unconfirmed = False
                self._stopped_dropping()

    async def _send(self, event: OutgoingEvent) -> None:
        headers = {"Nats-Msg-Id": event.msg_id, **event.headers}
        await self._js.publish(event.subject, event.payload, headers=headers,
                               timeout=self._publish_timeout_s)

    async def close(self, timeout: float = 5.0) -> None:
        """Flush what is buffered (retrying every 0.1 s, up to `timeout`), then stop; what is
        still buffered then is lost, counted and logged."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.pending and loop.time() < deadline:
            self._retry_now.set()
            await asyncio.sleep(0.1)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        lost = self.pending
        if lost:
            for event in self._buffer:
                event.settle(False)
            self._buffer.clear()
            self._in_flight = 0
            self._metrics.dropped.add(lost, {"reason": "shutdown"})
            self.dropped += lost
            log.error("stopping with %d unpublished events after trying for %.0f s (NATS unreachable); "
                      "they are lost", lost, timeout)

"""Idempotency and the exact cache around an answer: both are single flights in Redis (one
replica produces, the others wait for and replay its result)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import redis.asyncio as redis

from omniroute.v1 import common_pb2
from omniroute_router.replay import Collector, cached_events, decode_events, encode_events
from omniroute_router.shared import Shared
from omniroute_router.usage import RequestRecord

log = logging.getLogger("omniroute.router")
Produce = Callable[[], AsyncIterator[common_pb2.AnswerEvent]]


async def idempotent(shared: Shared, scope: str, request_id: str, *, lease_s: float, window_s: float,
                     record: RequestRecord, produce: Produce) -> AsyncIterator[common_pb2.AnswerEvent]:
    outcome = await shared.idempotency.begin(scope, request_id, lease_s=lease_s, wait_s=lease_s)
    if not outcome.owner and outcome.value:
        record.cache_hit, record.cache_kind = True, "idempotent"
        for event in decode_events(outcome.value):
            if event.WhichOneof("kind") == "start":
                event.start.headers["x-omniroute-idempotent"] = "true"
                record.provider, record.connection, record.model = (
                    event.start.provider, event.start.connection, event.start.model)
            yield event
        return
    kept: list[common_pb2.AnswerEvent] = []
    succeeded = False
    try:
        async for event in produce():
            kind = event.WhichOneof("kind")
            if kind != "usage":  # a replay is not billed again
                kept.append(event)
            yield event
        succeeded = bool(kept) and all(e.WhichOneof("kind") != "error" for e in kept)
    finally:
        # A failed first attempt keeps nothing: a waiting duplicate then makes its own attempt.
        with contextlib.suppress(redis.RedisError):
            await shared.idempotency.finish(scope, request_id, encode_events(kept) if succeeded else None,
                                            window_s)


async def cached(shared: Shared, key: str, request_id: str, *, ttl_s: float, lease_s: float,
                 stream: bool, usage_chunk: bool, headers: dict[str, str], record: RequestRecord,
                 produce: Produce) -> AsyncIterator[common_pb2.AnswerEvent]:
    outcome = await shared.cache.begin(key, request_id, lease_s=lease_s, wait_s=lease_s)
    if not outcome.owner and outcome.value:
        record.cache_hit, record.cache_kind = True, "exact"
        for event in cached_events(outcome.value, stream=stream, usage_chunk=usage_chunk,
                                   headers={**headers, "x-omniroute-cache": "HIT"}):
            if event.WhichOneof("kind") == "start":
                record.provider, record.connection, record.model = (
                    event.start.provider, event.start.connection, event.start.model)
                record.combo = event.start.combo
            yield event
        return
    headers["x-omniroute-cache"] = "MISS"
    collector = Collector()
    complete = False
    try:
        async for event in produce():
            collector.add(event)
            yield event
        complete = True
    finally:
        with contextlib.suppress(redis.RedisError):
            await shared.cache.finish(key, request_id, collector.entry() if complete else None, ttl_s)

"""The exact cache stage: the same key, model and (shaped) body within the TTL gets the kept
answer, as JSON or as a stream (one passed through in the caller's format: for that format and
stream flag only, `caches/replay.variant`). A single flight in Redis: one replica produces, the
others wait for and replay its result. The semantic cache sits inside it: an exact hit is cheaper
than an embedding."""

from __future__ import annotations

import contextlib

import redis.asyncio as redis

from omniroute.shared_state.cache import ExactCache, cache_key, cacheable
from omniroute_router.caches.replay import Collector, cached_events, variant
from omniroute_router.pipeline.call import Call, Events, Next


class ExactCacheStage:
    def __init__(self, cache: ExactCache, lease_s: float) -> None:
        self._cache = cache
        self._lease_s = lease_s

    async def __call__(self, call: Call, next: Next) -> Events:
        request = call.upstream
        ttl_s = cacheable(call.body, dict(request.options), call.snapshot.routing.cache)
        if ttl_s is None:
            async for event in next(call):
                yield event
            return
        key = cache_key(call.key.id if call.key else "", call.requested, call.body, variant(request))
        outcome = await self._cache.begin(key, request.request_id, lease_s=self._lease_s, wait_s=self._lease_s)
        if not outcome.owner and outcome.value:
            call.cache_kind = "exact"
            for event in cached_events(outcome.value, stream=request.stream, usage_chunk=call.usage_chunk,
                                       headers={**call.headers, "x-omniroute-cache": "HIT"}):
                yield event
            return
        call.headers["x-omniroute-cache"] = "MISS"
        collector = Collector()
        complete = False
        try:
            async for event in next(call):
                collector.add(event)
                yield event
            complete = True
        finally:
            with contextlib.suppress(redis.RedisError):
                await self._cache.finish(key, request.request_id, collector.entry() if complete else None,
                                         ttl_s)

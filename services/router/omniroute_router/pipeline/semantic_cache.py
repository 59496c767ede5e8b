"""The semantic cache stage, inside the exact cache: when the semantic cache is wanted for this
request (caches/semantic.py), a similar enough prompt's answer is replayed, else the answer is
produced and kept."""

from __future__ import annotations

from omniroute_router.caches.semantic import SemanticCache, wanted
from omniroute_router.pipeline.call import Call, Events, Next


class SemanticCacheStage:
    def __init__(self, cache: SemanticCache) -> None:
        self._cache = cache

    async def __call__(self, call: Call, next: Next) -> Events:
        settings = call.snapshot.routing.cache
        if not wanted(settings, call.key, dict(call.upstream.options), call.body):
            async for event in next(call):
                yield event
            return
        async for event in self._cache.serve(settings, call, produce=lambda: next(call)):
            yield event

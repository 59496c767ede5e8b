"""Per-combo state that strategies read and every replica shares: the round-robin counter, how
often each step answered (least-used), the step that answered last (lkgp / fill-first), and
recent latency per provider (the samples the analytics service records, read through
omniroute.analytics_store, which owns their key layout)."""

from __future__ import annotations

import time

import redis.asyncio as redis

from omniroute.analytics_store import LatencyStore
from omniroute.shared_state import text
from omniroute_router.selection.strategies import Shared

_LATENCY_SAMPLES = 100
_LATENCY_CACHE_S = 5.0  # p50 is advisory: a few seconds' staleness per process is fine


class ComboState:
    def __init__(self, client: redis.Redis, env: str) -> None:
        self._redis = client
        self._prefix = f"{env}:combo:"
        self._latency = LatencyStore(client, env)
        self._p50: dict[str, tuple[float, float | None]] = {}

    async def shared(self, combo: str, strategy: str) -> Shared:
        base = self._prefix + combo
        if strategy == "round-robin":
            return Shared(counter=int(await self._redis.incr(base + ":rr")) - 1)
        if strategy in ("lkgp", "fill-first"):
            # The same fact (the step that answered last); the strategies order around it
            # differently (strategies._fill_first, _lkgp).
            answered = text(await self._redis.get(base + ":good"))
            return Shared(last_good=answered, current=answered)
        return Shared()

    async def used(self, combo: str) -> dict[str, int]:
        raw = await self._redis.hgetall(self._prefix + combo + ":used")
        return {text(k): int(v) for k, v in raw.items()}

    async def answered(self, combo: str, step: str) -> None:
        """The step that just answered: counts for least-used, first next time for lkgp."""
        base = self._prefix + combo
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(base + ":used", step, 1)
            pipe.set(base + ":good", step, ex=24 * 3600)
            await pipe.execute()

    async def p50_ms(self, provider: str) -> float | None:
        cached = self._p50.get(provider)
        now = time.monotonic()
        if cached and now - cached[0] < _LATENCY_CACHE_S:
            return cached[1]
        value = await self._latency.recent_p50(provider, _LATENCY_SAMPLES)
        self._p50[provider] = (now, value)
        return value

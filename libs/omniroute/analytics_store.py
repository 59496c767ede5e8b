"""Recent latency samples per provider, kept in Redis so that every replica sees the same."""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis

from omniroute.v1 import events_pb2

WINDOW = 1000  # samples kept per provider


class LatencyStore:
    def __init__(self, client: redis.Redis, env: str) -> None:
        self._redis = client
        self._prefix = f"{env}:latency:"

    async def record(self, events: list[events_pb2.UsageEvent]) -> None:
        """Idempotent enough for redelivery: a sample list is a window, not a ledger."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for event in events:
                if not event.provider or event.status >= 400:
                    continue
                key = self._prefix + event.provider
                pipe.lpush(key, round(event.latency_ms, 3))
                pipe.ltrim(key, 0, WINDOW - 1)
            await pipe.execute()

    async def summary(self) -> dict[str, dict[str, Any]]:
        """p50 / p95 / p99 in ms and the sample count per provider."""
        result: dict[str, dict[str, Any]] = {}
        async for key in self._redis.scan_iter(match=self._prefix + "*"):
            name = key.decode() if isinstance(key, bytes) else key
            samples = sorted(float(v) for v in await self._redis.lrange(name, 0, -1))
            if samples:
                result[name.removeprefix(self._prefix)] = {
                    "p50": percentile(samples, 50), "p95": percentile(samples, 95),
                    "p99": percentile(samples, 99), "count": len(samples)}
        return result


def percentile(sorted_samples: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_samples:
        return 0.0
    rank = max(1, -(-len(sorted_samples) * pct // 100))  # ceil
    return round(sorted_samples[int(rank) - 1], 1)

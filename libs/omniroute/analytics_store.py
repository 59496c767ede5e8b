"""Recent latency samples per provider and recently active API keys, kept in Redis so that
every replica of every service answers from the same data (not from one process's memory).

Latency: one sorted set per provider, member "<request id>|<latency ms>", score = when the
request ended (epoch seconds). The request id in the member makes a redelivered event a no-op
(ZADD of an existing member), the score lets a summary cover any window up to `max_age_s`, and
each set is trimmed to the newest `cap` samples so memory stays bounded at any traffic.

This module owns that key layout: the analytics service writes it (LatencyStore.record) and the
router's latency-optimized combos read it (LatencyStore.recent_p50); nothing else builds the keys.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, cast

import redis.asyncio as redis

from omniroute.v1 import events_pb2

WINDOW = 1000  # kept for callers of the first version: the default sample cap was this
DEFAULT_CAP = 20_000  # samples kept per provider
DEFAULT_MAX_AGE_S = 24 * 3600


def _ended_at(event: events_pb2.UsageEvent) -> float:
    if event.HasField("started_at"):
        return event.started_at.seconds + event.started_at.nanos / 1e9 + event.latency_ms / 1000.0
    return time.time()


def _ttl(max_age_s: float) -> int:
    """Every key expires a minute after the window it serves, refreshed by every write: a key
    nobody wrote for a whole window holds only samples the window has dropped."""
    return int(max_age_s) + 60


def latency_key(env: str, provider: str) -> str:
    """The sorted set of one provider's latency samples."""
    return f"{env}:latency:z:{provider}"


def latency_providers_key(env: str) -> str:
    """The set of providers that have samples."""
    return f"{env}:latency:providers"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class LatencyStore:
    def __init__(self, client: redis.Redis, env: str, *, cap: int = DEFAULT_CAP,
                 max_age_s: float = DEFAULT_MAX_AGE_S) -> None:
        self._redis = client
        self._env = env
        self._providers = latency_providers_key(env)
        self._cap = cap
        self._max_age_s = max_age_s

    async def record(self, events: Iterable[events_pb2.UsageEvent]) -> None:
        """Successful requests only: an error's latency says nothing about the provider's speed."""
        by_provider: dict[str, dict[str, float]] = {}
        for event in events:
            if not event.provider or event.status >= 400:
                continue
            member = f"{event.request_id}|{round(event.latency_ms, 3)}"
            by_provider.setdefault(event.provider, {})[member] = _ended_at(event)
        if not by_provider:
            return
        oldest = time.time() - self._max_age_s
        ttl = _ttl(self._max_age_s)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.sadd(self._providers, *by_provider)
            pipe.expire(self._providers, ttl)   # outlives the newest sample set, no longer
            for provider, members in by_provider.items():
                key = latency_key(self._env, provider)
                pipe.zadd(key, members)
                pipe.zremrangebyscore(key, "-inf", oldest)
                pipe.zremrangebyrank(key, 0, -self._cap - 1)
                pipe.expire(key, ttl)
            await pipe.execute()

    async def summary(self, window_s: float | None = None) -> dict[str, dict[str, Any]]:
        """p50 / p95 / p99 in ms and the sample count per provider, over the last `window_s`
        seconds (None: every sample kept)."""
        since: float | str = "-inf" if window_s is None else time.time() - window_s
        providers = sorted(_text(p) for p in await self._redis.smembers(self._providers))  # type: ignore[misc]
        if not providers:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for provider in providers:
                pipe.zrangebyscore(latency_key(self._env, provider), since, "+inf")
            results = await pipe.execute()
        summary: dict[str, dict[str, Any]] = {}
        for provider, members in zip(providers, results, strict=True):
            samples = sorted(float(_text(m).rpartition("|")[2]) for m in members)
            if samples:
                summary[provider] = {"p50": percentile(samples, 50), "p95": percentile(samples, 95),
                                     "p99": percentile(samples, 99), "count": len(samples)}
        return summary

    async def recent_p50(self, provider: str, samples: int) -> float | None:
        """The median latency in ms of the provider's newest `samples` successful requests
        (None: no samples kept)."""
        newest = cast("list[bytes | str]",  # without scores: members only
                      await self._redis.zrevrange(latency_key(self._env, provider), 0, samples - 1))
        values = sorted(float(_text(m).rpartition("|")[2]) for m in newest)
        return percentile(values, 50) if values else None


class SessionStore:
    """Active sessions: API keys (or clients without a key) seen recently, with when and how
    often, in one sorted set (score = last seen) and a per-key counter per minute. Last-seen is
    idempotent; the request counts are an indicator (a redelivered batch adds again), not a
    ledger: exact counts are in Postgres usage rows."""

    def __init__(self, client: redis.Redis, env: str, *, max_age_s: float = DEFAULT_MAX_AGE_S) -> None:
        self._redis = client
        self._seen = f"{env}:sessions:seen"
        self._count_prefix = f"{env}:sessions:count:"
        self._max_age_s = max_age_s

    async def record(self, events: Iterable[events_pb2.UsageEvent]) -> None:
        last: dict[str, float] = {}
        counts: dict[tuple[str, int], int] = {}
        for event in events:
            who = event.key_id or "anonymous"
            ended = _ended_at(event)
            last[who] = max(last.get(who, 0.0), ended)
            minute = int(ended // 60)
            counts[(who, minute)] = counts.get((who, minute), 0) + 1
        if not last:
            return
        ttl = _ttl(self._max_age_s)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self._seen, last, gt=True)  # gt: a late event never moves last-seen back
            pipe.zremrangebyscore(self._seen, "-inf", time.time() - self._max_age_s)
            pipe.expire(self._seen, ttl)   # nothing recorded for a whole window: all of it is old
            for (who, minute), count in counts.items():
                key = f"{self._count_prefix}{minute}"
                pipe.hincrby(key, who, count)
                pipe.expire(key, ttl)
            await pipe.execute()

    async def active(self, window_s: float) -> list[dict[str, Any]]:
        """[{keyId, lastSeen (epoch s), requests}] seen in the last `window_s`, newest first.
        `requests` counts whole minutes, so it may include up to a minute before the window."""
        now = time.time()
        seen = await self._redis.zrevrangebyscore(self._seen, "+inf", now - window_s, withscores=True)
        if not seen:
            return []
        minutes = range(int((now - window_s) // 60), int(now // 60) + 1)
        async with self._redis.pipeline(transaction=False) as pipe:
            for minute in minutes:
                pipe.hgetall(f"{self._count_prefix}{minute}")
            per_minute = await pipe.execute()
        totals: dict[str, int] = {}
        for counts in per_minute:
            for who, count in counts.items():
                totals[_text(who)] = totals.get(_text(who), 0) + int(count)
        pairs = cast("list[tuple[bytes | str, float]]", seen)  # withscores: (member, score)
        return [{"keyId": _text(who), "lastSeen": score, "requests": totals.get(_text(who), 0)}
                for who, score in pairs]


def percentile(sorted_samples: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_samples:
        return 0.0
    rank = max(1, -(-len(sorted_samples) * pct // 100))  # ceil
    return round(sorted_samples[int(rank) - 1], 1)

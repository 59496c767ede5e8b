"""Per-key (and per-connection) rate limits: requests per minute, tokens per minute and
concurrent requests, admitted together by one atomic script so that a request is either
admitted by every limit or charged to none.

- rpm: a sliding-window log (a sorted set of request ids scored by time): exact, which is what
  "60 per minute across all replicas" needs.
- tpm: tokens are known only when a request ends, so admission checks the tokens recorded in the
  last window (per-second buckets in a hash) and the request's tokens are added afterwards.
- concurrency: a sorted set of leases scored by expiry. A replica that crashes mid-request does
  not leak its slot: the lease expires unless the running request renews it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as redis

from omniroute.shared_state import NOW_MS

WINDOW_MS = 60_000

_ADMIT = NOW_MS + """
local rpm, tpm, conc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local window, lease, member, dry = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], ARGV[7] == '1'
local retry, rpm_used, tpm_used, conc_used = 0, 0, 0, 0
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
rpm_used = redis.call('ZCARD', KEYS[1])
if rpm > 0 and rpm_used >= rpm then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  retry = math.max(retry, tonumber(oldest[2]) + window - now)
end
local cutoff = math.floor((now - window) / 1000)
local buckets = redis.call('HGETALL', KEYS[2])
local oldest_sec = nil
for i = 1, #buckets, 2 do
  local sec = tonumber(buckets[i])
  if sec <= cutoff then
    redis.call('HDEL', KEYS[2], buckets[i])
  else
    tpm_used = tpm_used + tonumber(buckets[i + 1])
    if oldest_sec == nil or sec < oldest_sec then oldest_sec = sec end
  end
end
if tpm > 0 and tpm_used >= tpm then
  retry = math.max(retry, (oldest_sec + 1) * 1000 + window - now)
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
conc_used = redis.call('ZCARD', KEYS[3])
if conc > 0 and conc_used >= conc then
  retry = math.max(retry, 1000)  -- a slot frees whenever a running request ends
end
if retry > 0 or dry then return {retry > 0 and 0 or 1, retry, rpm_used, tpm_used, conc_used} end
if rpm > 0 then
  redis.call('ZADD', KEYS[1], now, member)
  redis.call('PEXPIRE', KEYS[1], window)
  rpm_used = rpm_used + 1
end
if conc > 0 then
  redis.call('ZADD', KEYS[3], now + lease, member)
  redis.call('PEXPIRE', KEYS[3], lease)
  conc_used = conc_used + 1
end
return {1, 0, rpm_used, tpm_used, conc_used}
"""

_ADD_TOKENS = NOW_MS + """
redis.call('HINCRBY', KEYS[1], tostring(math.floor(now / 1000)), tonumber(ARGV[1]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 1000)
"""

_RENEW = NOW_MS + """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then  -- a released or expired lease stays gone
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
end
"""


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int = 0
    tpm: int = 0
    concurrency: int = 0

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Limits:
        def get(name: str) -> int:
            value = values.get(name)
            return int(value) if isinstance(value, int | float | str) and str(value).strip() else 0
        return cls(rpm=get("rpm"), tpm=get("tpm"), concurrency=get("concurrency"))

    @property
    def any(self) -> bool:
        return bool(self.rpm or self.tpm or self.concurrency)


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    retry_after_s: float
    limits: Limits
    rpm_used: int
    tpm_used: int
    concurrency_used: int
    reasons: tuple[str, ...] = field(default=())

    def headers(self) -> dict[str, str]:
        """OpenAI-style x-ratelimit-* headers (plus retry-after when refused)."""
        headers: dict[str, str] = {}
        if self.limits.rpm:
            headers["x-ratelimit-limit-requests"] = str(self.limits.rpm)
            headers["x-ratelimit-remaining-requests"] = str(max(0, self.limits.rpm - self.rpm_used))
        if self.limits.tpm:
            headers["x-ratelimit-limit-tokens"] = str(self.limits.tpm)
            headers["x-ratelimit-remaining-tokens"] = str(max(0, self.limits.tpm - self.tpm_used))
        if self.limits.concurrency:
            headers["x-ratelimit-limit-concurrency"] = str(self.limits.concurrency)
        if not self.allowed:
            headers["retry-after"] = str(max(1, round(self.retry_after_s + 0.499)))
            headers["x-ratelimit-reset-requests"] = f"{self.retry_after_s:.3f}s"
        return headers


class RateLimiter:
    def __init__(self, client: redis.Redis, env: str, *, lease_s: float = 120.0) -> None:
        self._redis = client
        self._prefix = f"{env}:rl:"
        self.lease_ms = int(lease_s * 1000)
        self._admit = client.register_script(_ADMIT)
        self._add_tokens = client.register_script(_ADD_TOKENS)
        self._renew = client.register_script(_RENEW)

    def _keys(self, scope: str) -> list[str]:
        base = self._prefix + scope
        return [base + ":rpm", base + ":tpm", base + ":conc"]

    async def admit(self, scope: str, limits: Limits, member: str, *, dry: bool = False) -> Admission:
        """Admit one request (`member`, unique per request) under every limit at once."""
        raw = await self._admit(keys=self._keys(scope), args=[
            limits.rpm, limits.tpm, limits.concurrency, WINDOW_MS, self.lease_ms, member,
            "1" if dry else "0"])
        allowed, retry_ms, rpm_used, tpm_used, conc_used = (int(v) for v in raw)
        reasons = tuple(name for name, used, limit in (
            ("rpm", rpm_used, limits.rpm), ("tpm", tpm_used, limits.tpm),
            ("concurrency", conc_used, limits.concurrency)) if limit and used >= limit)
        return Admission(bool(allowed), retry_ms / 1000, limits, rpm_used, tpm_used, conc_used,
                         reasons if not allowed else ())

    async def usage(self, scope: str, limits: Limits) -> Admission:
        return await self.admit(scope, limits, "", dry=True)

    async def add_tokens(self, scope: str, tokens: int) -> None:
        if tokens > 0:
            await self._add_tokens(keys=[self._keys(scope)[1]], args=[tokens, WINDOW_MS])

    async def release(self, scope: str, member: str) -> None:
        await self._redis.zrem(self._keys(scope)[2], member)

    @contextlib.asynccontextmanager
    async def held(self, scope: str, member: str) -> AsyncIterator[None]:
        """While inside, renew the concurrency lease (long streams); release it on the way out."""
        renewer = asyncio.create_task(self._renew_forever(scope, member))
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            with contextlib.suppress(redis.RedisError):
                await self.release(scope, member)

    async def _renew_forever(self, scope: str, member: str) -> None:
        key = self._keys(scope)[2]
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            with contextlib.suppress(redis.RedisError):
                await self._renew(keys=[key], args=[member, self.lease_ms])

"""Per-key, per-team (and per-connection) rate limits: requests per minute, tokens per minute and
concurrent requests, admitted together by one atomic script so that a request is either
admitted by every limit or charged to none — across scopes too: a key's request is admitted by
the key's limits and its team's in the same script (`admit_all`), so a team's refusal leaves
nothing counted for the key.

- rpm: a sliding-window log (a sorted set of request ids scored by time): exact, which is what
  "60 per minute across all replicas" needs.
- tpm: tokens are known only when a request ends, so admission checks the tokens recorded in the
  last window (per-second buckets in a hash) and the request's tokens are added afterwards.
- concurrency: a sorted set of leases scored by expiry. A replica that crashes mid-request does
  not leak its slot: the lease expires unless the running request renews it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as redis

from omniroute.shared_state import NOW_MS

WINDOW_MS = 60_000

# Several scopes (a key and its team) in one script: every scope is checked first, and only when
# every one admits is the request counted in all of them; a refusal counts it in none. KEYS: per
# scope its rpm, tpm and concurrency keys; ARGV[1..4]: window, lease, member, dry; then per scope
# rpm, tpm, concurrency. Returns per scope {allowed, retry ms, rpm used, tpm used, conc used}.
_ADMIT = NOW_MS + """
local window, lease, member, dry = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4] == '1'
local scopes = #KEYS / 3
local results, refused = {}, false
for s = 0, scopes - 1 do
  local k_rpm, k_tpm, k_conc = KEYS[s * 3 + 1], KEYS[s * 3 + 2], KEYS[s * 3 + 3]
  local rpm, tpm, conc = tonumber(ARGV[5 + s * 3]), tonumber(ARGV[6 + s * 3]), tonumber(ARGV[7 + s * 3])
  local retry, rpm_used, tpm_used, conc_used = 0, 0, 0, 0
  redis.call('ZREMRANGEBYSCORE', k_rpm, '-inf', now - window)
  rpm_used = redis.call('ZCARD', k_rpm)
  if rpm > 0 and rpm_used >= rpm then
    local oldest = redis.call('ZRANGE', k_rpm, 0, 0, 'WITHSCORES')
    retry = math.max(retry, tonumber(oldest[2]) + window - now)
  end
  local cutoff = math.floor((now - window) / 1000)
  local buckets = redis.call('HGETALL', k_tpm)
  local oldest_sec = nil
  for i = 1, #buckets, 2 do
    local sec = tonumber(buckets[i])
    if sec <= cutoff then
      redis.call('HDEL', k_tpm, buckets[i])
    else
      tpm_used = tpm_used + tonumber(buckets[i + 1])
      if oldest_sec == nil or sec < oldest_sec then oldest_sec = sec end
    end
  end
  if tpm > 0 and tpm_used >= tpm then
    retry = math.max(retry, (oldest_sec + 1) * 1000 + window - now)
  end
  redis.call('ZREMRANGEBYSCORE', k_conc, '-inf', now)
  conc_used = redis.call('ZCARD', k_conc)
  if conc > 0 and conc_used >= conc then
    retry = math.max(retry, 1000)  -- a slot frees whenever a running request ends
  end
  if retry > 0 then refused = true end
  results[#results + 1] = {retry > 0 and 0 or 1, retry, rpm_used, tpm_used, conc_used}
end
if not refused and not dry then
  for s = 0, scopes - 1 do
    local rpm, conc = tonumber(ARGV[5 + s * 3]), tonumber(ARGV[7 + s * 3])
    if rpm > 0 then
      redis.call('ZADD', KEYS[s * 3 + 1], now, member)
      redis.call('PEXPIRE', KEYS[s * 3 + 1], window)
      results[s + 1][3] = results[s + 1][3] + 1
    end
    if conc > 0 then
      redis.call('ZADD', KEYS[s * 3 + 3], now + lease, member)
      redis.call('PEXPIRE', KEYS[s * 3 + 3], lease)
      results[s + 1][5] = results[s + 1][5] + 1
    end
  end
end
return results
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
        [admission] = await self.admit_all([(scope, limits)], member, dry=dry)
        return admission

    async def admit_all(self, scopes: Sequence[tuple[str, Limits]], member: str, *,
                        dry: bool = False) -> list[Admission]:
        """Admit one request under every limit of every scope (a key and its team) in one
        atomic step: counted in all of them, or, when any refuses, in none. One Admission per
        scope, in order; each says whether that scope alone would admit."""
        keys = [name for scope, _ in scopes for name in self._keys(scope)]
        args: list[int | str] = [WINDOW_MS, self.lease_ms, member, "1" if dry else "0"]
        for _, limits in scopes:
            args.extend((limits.rpm, limits.tpm, limits.concurrency))
        raw = await self._admit(keys=keys, args=args)
        admissions = []
        for (_, limits), values in zip(scopes, raw, strict=True):
            allowed, retry_ms, rpm_used, tpm_used, conc_used = (int(v) for v in values)
            reasons = tuple(name for name, used, limit in (
                ("rpm", rpm_used, limits.rpm), ("tpm", tpm_used, limits.tpm),
                ("concurrency", conc_used, limits.concurrency)) if limit and used >= limit)
            admissions.append(Admission(bool(allowed), retry_ms / 1000, limits, rpm_used, tpm_used,
                                        conc_used, reasons if not allowed else ()))
        return admissions

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

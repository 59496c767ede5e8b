"""Circuit breakers per connection, in Redis so that a breaker opened by one router is open for
all of them.

CLOSED → (degraded_threshold consecutive failures) DEGRADED: still used, but after healthy peers
       → (failure_threshold consecutive failures) OPEN: not used until reset_timeout passes
OPEN → (timeout passed) HALF_OPEN: exactly one probe request is let through (claimed
       atomically, so ten replicas do not send ten probes); success → CLOSED, failure → OPEN.
Any success closes the breaker and forgets the failures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.commands.core import AsyncScript

from omniroute.config.routing_spec import ResilienceProfile
from omniroute.shared_state import NOW_MS, queue_script, text
from omniroute.shared_state.health_keys import HealthKeys

CLOSED, DEGRADED, OPEN, HALF_OPEN = "CLOSED", "DEGRADED", "OPEN", "HALF_OPEN"
_FORGET_MS = 24 * 3600 * 1000  # a breaker quiet for a day is forgotten

_TRY = NOW_MS + """
local st = redis.call('HMGET', KEYS[1], 'state', 'opened_until', 'probe_until')
local state = st[1] or 'CLOSED'
if state == 'OPEN' then
  local until_ = tonumber(st[2]) or 0
  if now < until_ then return {0, state, until_ - now} end
  state = 'HALF_OPEN'
  redis.call('HSET', KEYS[1], 'state', state, 'probe_until', now + tonumber(ARGV[1]))
  return {1, state, 0}
end
if state == 'HALF_OPEN' then
  local probe = tonumber(st[3]) or 0
  if now < probe then return {0, state, probe - now} end
  -- the previous probe never reported back (its router died): let another one try
  redis.call('HSET', KEYS[1], 'probe_until', now + tonumber(ARGV[1]))
  return {1, state, 0}
end
return {1, state, 0}
"""

_RECORD = NOW_MS + """
if ARGV[1] == 'success' then
  if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('DEL', KEYS[1]) end
  return 'CLOSED'
end
local state = redis.call('HGET', KEYS[1], 'state') or 'CLOSED'
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if state == 'HALF_OPEN' or failures >= tonumber(ARGV[2]) then
  state = 'OPEN'
  redis.call('HSET', KEYS[1], 'state', state, 'opened_until', now + tonumber(ARGV[4]))
elseif failures >= tonumber(ARGV[3]) and state == 'CLOSED' then
  state = 'DEGRADED'
  redis.call('HSET', KEYS[1], 'state', state)
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
return state
"""

_VIEW = NOW_MS + """
local out = {}
for i = 1, #KEYS do
  local st = redis.call('HMGET', KEYS[i], 'state', 'opened_until', 'failures')
  local state = st[1] or 'CLOSED'
  local remaining = 0
  if state == 'OPEN' then
    remaining = math.max(0, (tonumber(st[2]) or 0) - now)
    if remaining == 0 then state = 'HALF_OPEN' end  -- due for a probe
  end
  table.insert(out, state)
  table.insert(out, remaining)
  table.insert(out, tonumber(st[3]) or 0)
end
return out
"""


@dataclass(frozen=True, slots=True)
class BreakerState:
    state: str
    retry_after_s: float
    failures: int

    @property
    def usable(self) -> bool:
        return self.state != OPEN


class Breakers:
    def __init__(self, client: redis.Redis, env: str) -> None:
        self._redis = client
        self._keys = HealthKeys(env)
        self._try = client.register_script(_TRY)
        self._record = client.register_script(_RECORD)
        self._view = client.register_script(_VIEW)

    def key(self, connection_id: str) -> str:
        return self._keys.breaker(connection_id)

    async def try_pass(self, connection_id: str, probe_timeout_s: float) -> BreakerState:
        """May a request go to this connection now? Claims the single half-open probe."""
        allowed, state, remaining = await self._try(keys=[self.key(connection_id)],
                                                    args=[int(probe_timeout_s * 1000)])
        return BreakerState(text(state) if allowed else OPEN, int(remaining) / 1000, 0)

    async def record(self, connection_id: str, success: bool, profile: ResilienceProfile) -> str:
        state = await self._record(keys=[self.key(connection_id)], args=[
            "success" if success else "failure", profile.failure_threshold,
            profile.degraded_threshold, int(profile.reset_timeout_s * 1000), _FORGET_MS])
        return text(state)

    async def view(self, connection_ids: list[str]) -> dict[str, BreakerState]:
        """Read-only: the state of several breakers in one round trip."""
        if not connection_ids:
            return {}
        return self.parse_view(await self._view(keys=[self.key(c) for c in connection_ids]), connection_ids)

    def queue_view(self, pipe: Any, connection_ids: list[str]) -> AsyncScript:
        """The view's command on a pipeline (batched with others); returns the script it uses."""
        queue_script(pipe, self._view, [self.key(c) for c in connection_ids])
        return self._view

    def parse_view(self, raw: list[Any], connection_ids: list[str]) -> dict[str, BreakerState]:
        return {cid: BreakerState(text(raw[i * 3]), int(raw[i * 3 + 1]) / 1000, int(raw[i * 3 + 2]))
                for i, cid in enumerate(connection_ids)}

    async def reset(self, connection_id: str | None = None) -> int:
        """Close one breaker, or every breaker of this env."""
        if connection_id is not None:
            return int(await self._redis.delete(self.key(connection_id)))
        keys = [key async for key in self._redis.scan_iter(match=self._keys.breaker_prefix + "*", count=500)]
        return int(await self._redis.delete(*keys)) if keys else 0

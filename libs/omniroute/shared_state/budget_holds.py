"""Budget reservations: before dispatch the router holds a request's worst-case cost against its
key's budget, in one Lua script (one round trip, atomic across every router replica).

Per key, a hash holds request id → nano-dollars and their total, and a sorted set scores each
request id by the time its hold expires. Every reservation first sweeps the expired holds (those
of a router that died with requests in flight), then admits the request only if the period's
spend, the live holds and its own worst case together stay within the limit.

A hold's life: `reserve` (worst case, expires after the request's longest possible life);
`settle` when the answer ended (lowered or raised to the real cost, kept until accounting has
ingested the usage event); `release` when the request failed or was answered by a cache; or
accounting's ingest drops it when it adds the real cost to the spend counter (the same script,
omniroute.shared_state.budget.record_spend). Only accounting adds spend, so nothing counts twice.
Times are Redis's clock (TIME), so replicas' clocks do not matter."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as redis

from omniroute.shared_state.budget import TOTAL_FIELD, hold_deadlines_key, holds_key

# Shared head: the clock, the sweep of expired holds, and keeping the keys alive.
# KEYS[1] holds hash, KEYS[2] deadlines set; ARGV[1] total field, ARGV[2] request id.
_COMMON = """
local holds, deadlines, total, id = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
-- Numbers go back to Redis as integer strings ('%d'): Lua would write 2e9 as '2e+09'.
local function int(n) return string.format('%d', n) end
local function drop(request_id)
  local held = redis.call('HGET', holds, request_id)
  if held then
    redis.call('HINCRBY', holds, total, int(-tonumber(held)))
    redis.call('HDEL', holds, request_id)
  end
  redis.call('ZREM', deadlines, request_id)
  return held
end
local function hold(request_id, nanos, hold_s)
  redis.call('HSET', holds, request_id, int(nanos))
  redis.call('HINCRBY', holds, total, int(nanos))
  redis.call('ZADD', deadlines, int(now_ms + hold_s * 1000), request_id)
  local keep = hold_s + 60  -- the hash and set outlive their longest hold
  for _, name in ipairs({holds, deadlines}) do
    if redis.call('TTL', name) < keep then redis.call('EXPIRE', name, int(keep)) end
  end
end
"""

# KEYS[3] the period's spend counter. ARGV[3] worst case, ARGV[4] hold seconds, ARGV[5] limit
# (all nano-dollars). Returns {admitted 0/1, spent, held by others}.
_RESERVE = _COMMON + """
for _, expired in ipairs(redis.call('ZRANGEBYSCORE', deadlines, '-inf', int(now_ms))) do
  drop(expired)
end
drop(id)  -- the same request id again (a retry) replaces its hold
local spent = tonumber(redis.call('GET', KEYS[3]) or '0')
local held = tonumber(redis.call('HGET', holds, total) or '0')
local nanos, limit = tonumber(ARGV[3]), tonumber(ARGV[5])
if spent + held >= limit or spent + held + nanos > limit then
  return {0, spent, held}
end
hold(id, nanos, tonumber(ARGV[4]))
return {1, spent, held}
"""

# ARGV[3] real cost, ARGV[4] seconds to keep it until accounting ingests. A hold already dropped
# (ingested, expired) stays dropped.
_SETTLE = _COMMON + """
if not drop(id) then return 0 end
hold(id, tonumber(ARGV[3]), tonumber(ARGV[4]))
return 1
"""

_RELEASE = _COMMON + """
return drop(id) and 1 or 0
"""


@dataclass(frozen=True, slots=True)
class Reservation:
    admitted: bool
    spent_nanos: int   # the period's spend counter
    held_nanos: int    # what other requests in flight hold

    def remaining_nanos(self, limit_nanos: int) -> int:
        return max(limit_nanos - self.spent_nanos - self.held_nanos, 0)


class BudgetHolds:
    """The reservations of every key of one environment."""

    def __init__(self, client: redis.Redis, env: str) -> None:
        self._redis = client
        self._env = env

    def _keys(self, key_id: str) -> list[str]:
        return [holds_key(self._env, key_id), hold_deadlines_key(self._env, key_id)]

    async def reserve(self, key_id: str, request_id: str, counter: str, limit_nanos: int,
                      nanos: int, hold_s: int) -> Reservation:
        """Hold `nanos` for the request if spend + holds + nanos stay within `limit_nanos`
        (`counter`: the spend counter of the budget's current period)."""
        admitted, spent, held = await self._redis.eval(  # type: ignore[misc]
            _RESERVE, 3, *self._keys(key_id), counter, TOTAL_FIELD, request_id, max(nanos, 0),
            max(hold_s, 1), limit_nanos)
        return Reservation(admitted=bool(admitted), spent_nanos=int(spent), held_nanos=int(held))

    async def settle(self, key_id: str, request_id: str, nanos: int, hold_s: int) -> bool:
        """The answer ended and cost `nanos`: hold that until accounting has counted it."""
        return bool(await self._redis.eval(  # type: ignore[misc]
            _SETTLE, 2, *self._keys(key_id), TOTAL_FIELD, request_id, max(nanos, 0), max(hold_s, 1)))

    async def release(self, key_id: str, request_id: str) -> bool:
        """The request cost nothing (failed, cancelled before an answer, answered from a cache)."""
        return bool(await self._redis.eval(  # type: ignore[misc]
            _RELEASE, 2, *self._keys(key_id), TOTAL_FIELD, request_id))


# The sum of the holds still alive (deadline after Redis's now), read-only: what requests in
# flight hold. KEYS: holds hash, deadlines set. Returned as an integer string.
_HELD = """
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local sum = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now_ms, '+inf')) do
  sum = sum + tonumber(redis.call('HGET', KEYS[1], id) or '0')
end
return string.format('%d', sum)
"""


async def held_nanos(client: redis.Redis, env: str, key_id: str) -> int:
    """What the key's requests in flight hold now (for /api/usage/budget)."""
    return int(await client.eval(_HELD, 2, holds_key(env, key_id),  # type: ignore[misc]
                                 hold_deadlines_key(env, key_id)))

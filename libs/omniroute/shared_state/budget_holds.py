"""Budget reservations: before dispatch the router holds a request's worst-case cost against every
budget that applies to it (its key's and its team's), in one Lua script (one round trip, atomic
across every router replica): held against all of them, or, when any of them has no room, none.

Per budget owner (a key id, or `team:<id>` for a team: omniroute.shared_state.budget.team_owner),
a hash holds request id → nano-dollars and their total, and a sorted set scores each request id by
the time its hold expires. Every reservation first sweeps the expired holds (those of a router
that died with requests in flight), then admits the request only if, for every budget, the
period's spend, the live holds and its own worst case together stay within the limit.

A hold's life: `reserve` (worst case, expires after the request's longest possible life);
`settle` when the answer ended (lowered or raised to the real cost, kept until accounting has
ingested the usage event); `release` when the request failed or was answered by a cache; or
accounting's ingest drops it when it adds the real cost to the spend counters (the same script,
omniroute.shared_state.budget.record_spend, for the key and the team). Only accounting adds
spend, so nothing counts twice. Times are Redis's clock (TIME), so replicas' clocks do not
matter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as redis

from omniroute.shared_state.budget import TOTAL_FIELD, hold_deadlines_key, holds_key

# Shared head: the clock, dropping and adding one request's hold in one owner's hash and set.
# ARGV[1] total field, ARGV[2] request id.
_COMMON = """
local total, id = ARGV[1], ARGV[2]
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
-- Numbers go back to Redis as integer strings ('%d'): Lua would write 2e9 as '2e+09'.
local function int(n) return string.format('%d', n) end
local function drop(holds, deadlines, request_id)
  local held = redis.call('HGET', holds, request_id)
  if held then
    redis.call('HINCRBY', holds, total, int(-tonumber(held)))
    redis.call('HDEL', holds, request_id)
  end
  redis.call('ZREM', deadlines, request_id)
  return held
end
local function hold(holds, deadlines, request_id, nanos, hold_s)
  redis.call('HSET', holds, request_id, int(nanos))
  redis.call('HINCRBY', holds, total, int(nanos))
  redis.call('ZADD', deadlines, int(now_ms + hold_s * 1000), request_id)
  local keep = hold_s + 60  -- the hash and set outlive their longest hold
  for _, name in ipairs({holds, deadlines}) do
    if redis.call('TTL', name) < keep then redis.call('EXPIRE', name, int(keep)) end
  end
end
"""

# KEYS per budget: holds hash, deadlines set, the period's spend counter. ARGV[3] worst case,
# ARGV[4] hold seconds, then per budget its limit (all nano-dollars). Held in every budget or in
# none. Returns per budget {fits 0/1, spent, held by others}.
_RESERVE = _COMMON + """
local nanos, hold_s = tonumber(ARGV[3]), tonumber(ARGV[4])
local answers, all_fit = {}, true
for b = 0, #KEYS / 3 - 1 do
  local holds, deadlines, counter = KEYS[b * 3 + 1], KEYS[b * 3 + 2], KEYS[b * 3 + 3]
  for _, expired in ipairs(redis.call('ZRANGEBYSCORE', deadlines, '-inf', int(now_ms))) do
    drop(holds, deadlines, expired)
  end
  drop(holds, deadlines, id)  -- the same request id again (a retry) replaces its hold
  local spent = tonumber(redis.call('GET', counter) or '0')
  local held = tonumber(redis.call('HGET', holds, total) or '0')
  local limit = tonumber(ARGV[5 + b])
  local fits = not (spent + held >= limit or spent + held + nanos > limit)
  if not fits then all_fit = false end
  answers[#answers + 1] = {fits and 1 or 0, spent, held}
end
if all_fit then
  for b = 0, #KEYS / 3 - 1 do
    hold(KEYS[b * 3 + 1], KEYS[b * 3 + 2], id, nanos, hold_s)
  end
end
return answers
"""

# KEYS per budget: holds hash, deadlines set. ARGV[3] real cost, ARGV[4] seconds to keep it until
# accounting ingests. A hold already dropped (ingested, expired) stays dropped. Returns how many
# holds were settled.
_SETTLE = _COMMON + """
local settled = 0
for b = 0, #KEYS / 2 - 1 do
  if drop(KEYS[b * 2 + 1], KEYS[b * 2 + 2], id) then
    hold(KEYS[b * 2 + 1], KEYS[b * 2 + 2], id, tonumber(ARGV[3]), tonumber(ARGV[4]))
    settled = settled + 1
  end
end
return settled
"""

# A long answer's holds outlive it: each owner's hold of the request gets a new deadline (only a
# hold that is still there: one expired or dropped stays gone). Returns how many were extended.
_EXTEND = _COMMON + """
local hold_s, extended = tonumber(ARGV[3]), 0
for b = 0, #KEYS / 2 - 1 do
  if redis.call('ZADD', KEYS[b * 2 + 2], 'XX', 'CH', int(now_ms + hold_s * 1000), id) == 1 then
    extended = extended + 1
    local keep = hold_s + 60
    for _, name in ipairs({KEYS[b * 2 + 1], KEYS[b * 2 + 2]}) do
      if redis.call('TTL', name) < keep then redis.call('EXPIRE', name, int(keep)) end
    end
  end
end
return extended
"""

_RELEASE = _COMMON + """
local released = 0
for b = 0, #KEYS / 2 - 1 do
  if drop(KEYS[b * 2 + 1], KEYS[b * 2 + 2], id) then released = released + 1 end
end
return released
"""


@dataclass(frozen=True, slots=True)
class Reservation:
    admitted: bool
    spent_nanos: int   # the period's spend counter
    held_nanos: int    # what other requests in flight hold

    def remaining_nanos(self, limit_nanos: int) -> int:
        return max(limit_nanos - self.spent_nanos - self.held_nanos, 0)


@dataclass(frozen=True, slots=True)
class HeldBudget:
    """One budget a request is held against: its owner (a key id or team_owner(team id)), the
    spend counter of its current period and its limit."""

    owner: str
    counter: str
    limit_nanos: int


class BudgetHolds:
    """The reservations of every key and team of one environment."""

    def __init__(self, client: redis.Redis, env: str) -> None:
        self._redis = client
        self._env = env

    def _keys(self, owner: str) -> list[str]:
        return [holds_key(self._env, owner), hold_deadlines_key(self._env, owner)]

    async def reserve(self, key_id: str, request_id: str, counter: str, limit_nanos: int,
                      nanos: int, hold_s: int) -> Reservation:
        """Hold `nanos` for the request if spend + holds + nanos stay within `limit_nanos`
        (`counter`: the spend counter of the budget's current period)."""
        [reservation] = await self.reserve_all(request_id, [HeldBudget(key_id, counter, limit_nanos)],
                                               nanos, hold_s)
        return reservation

    async def reserve_all(self, request_id: str, budgets: Sequence[HeldBudget], nanos: int,
                          hold_s: int) -> list[Reservation]:
        """Hold `nanos` against every budget at once, or against none when any has no room.
        One Reservation per budget, in order: `admitted` says whether that budget had room (the
        request is held only when all did)."""
        keys = [name for held in budgets for name in (*self._keys(held.owner), held.counter)]
        answers = await self._redis.eval(  # type: ignore[misc]
            _RESERVE, len(keys), *keys, TOTAL_FIELD, request_id, max(nanos, 0), max(hold_s, 1),
            *(held.limit_nanos for held in budgets))
        return [Reservation(admitted=bool(int(fits)), spent_nanos=int(spent), held_nanos=int(held))
                for fits, spent, held in answers]

    async def settle(self, key_id: str, request_id: str, nanos: int, hold_s: int) -> bool:
        """The answer ended and cost `nanos`: hold that until accounting has counted it."""
        return bool(await self.settle_all([key_id], request_id, nanos, hold_s))

    async def settle_all(self, owners: Sequence[str], request_id: str, nanos: int, hold_s: int) -> int:
        """`settle` for each owner's hold of the request (key and team); how many were held."""
        keys = [name for owner in owners for name in self._keys(owner)]
        return int(await self._redis.eval(  # type: ignore[misc]
            _SETTLE, len(keys), *keys, TOTAL_FIELD, request_id, max(nanos, 0), max(hold_s, 1)))

    async def extend_all(self, owners: Sequence[str], request_id: str, hold_s: int) -> int:
        """The request is still running: its holds expire `hold_s` from now (a stream can outlive
        the hold it started with: the upstream timeout bounds a read, not the whole answer)."""
        keys = [name for owner in owners for name in self._keys(owner)]
        return int(await self._redis.eval(  # type: ignore[misc]
            _EXTEND, len(keys), *keys, TOTAL_FIELD, request_id, max(hold_s, 1)))

    async def release(self, key_id: str, request_id: str) -> bool:
        """The request cost nothing (failed, cancelled before an answer, answered from a cache)."""
        return bool(await self.release_all([key_id], request_id))

    async def release_all(self, owners: Sequence[str], request_id: str) -> int:
        keys = [name for owner in owners for name in self._keys(owner)]
        return int(await self._redis.eval(  # type: ignore[misc]
            _RELEASE, len(keys), *keys, TOTAL_FIELD, request_id))


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
    """What the requests in flight of a key (or a team: `key_id` = team_owner(id)) hold now
    (for /api/usage/budget)."""
    return int(await client.eval(_HELD, 2, holds_key(env, key_id),  # type: ignore[misc]
                                 hold_deadlines_key(env, key_id)))

"""Cooldowns per connection (or per connection and model), and model locks.

Rate limits and overloads are usually per model at the providers (OpenAI and Anthropic limit
each model separately), so 429 and transient failures cool down that model on that connection;
a bad credential (401/403) cools down the whole connection.

A failed connection cools down for base·2^(level-1) seconds (capped), at least as long as the
provider's Retry-After; each failure raises the level, each success lowers it by one, and a
connection quiet for longer than the cap starts again from level 0. A 404 for a model locks
that model on that connection (other models keep working)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.commands.core import AsyncScript

from omniroute.config.routing_spec import CooldownSettings
from omniroute.shared_state import NOW_MS, queue_script, text
from omniroute.shared_state.health_keys import HealthKeys

_FAIL = NOW_MS + """
local level = redis.call('HINCRBY', KEYS[1], 'level', 1)
local duration = math.min(tonumber(ARGV[2]), tonumber(ARGV[1]) * 2 ^ (level - 1))
duration = math.floor(math.max(duration, tonumber(ARGV[3])))
redis.call('HSET', KEYS[1], 'until', now + duration, 'reason', ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.floor(duration + tonumber(ARGV[2])))
return {level, math.floor(duration)}
"""

_SUCCEED = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('HINCRBY', KEYS[i], 'level', -1) <= 0 then redis.call('DEL', KEYS[i]) end
  end
end
"""

_VIEW = NOW_MS + """
local out = {}
for i = 1, #KEYS do
  local st = redis.call('HMGET', KEYS[i], 'until', 'level', 'reason')
  table.insert(out, math.max(0, (tonumber(st[1]) or 0) - now))
  table.insert(out, tonumber(st[2]) or 0)
  table.insert(out, st[3] or '')
end
return out
"""


@dataclass(frozen=True, slots=True)
class Cooldown:
    remaining_s: float
    level: int
    reason: str

    @property
    def active(self) -> bool:
        return self.remaining_s > 0


class Cooldowns:
    def __init__(self, client: redis.Redis, env: str) -> None:
        self._redis = client
        self._keys = HealthKeys(env)
        self._fail = client.register_script(_FAIL)
        self._succeed = client.register_script(_SUCCEED)
        self._view = client.register_script(_VIEW)

    def _key(self, connection_id: str, model: str | None) -> str:
        return self._keys.cooldown(connection_id, model)

    async def fail(self, connection_id: str, settings: CooldownSettings, *, reason: str,
                   at_least_s: float = 0.0, model: str | None = None) -> Cooldown:
        level, duration_ms = await self._fail(keys=[self._key(connection_id, model)], args=[
            int(settings.base_s * 1000), int(settings.max_s * 1000), int(at_least_s * 1000), reason])
        return Cooldown(int(duration_ms) / 1000, int(level), reason)

    async def succeed(self, connection_id: str, model: str | None = None) -> None:
        """One level down for the connection and, with `model`, for that model on it."""
        await self._succeed(keys=[self._key(connection_id, None)]
                            + ([self._key(connection_id, model)] if model else []))

    async def lock_model(self, connection_id: str, model: str, seconds: float) -> None:
        await self._redis.set(self._keys.model_lock(connection_id, model), "404",
                              px=max(1, int(seconds * 1000)))

    async def view(self, connection_ids: list[str], model: str | None = None) -> dict[str, Cooldown]:
        """Each connection's cooldown: the longer of its own and (with `model`) that model's."""
        if not connection_ids:
            return {}
        return self.parse_view(await self._view(keys=self._view_keys(connection_ids, model)), connection_ids,
                               model)

    def _view_keys(self, connection_ids: list[str], model: str | None) -> list[str]:
        scopes = [None, model] if model else [None]
        return [self._key(c, m) for c in connection_ids for m in scopes]

    def queue_view(self, pipe: Any, connection_ids: list[str], model: str | None) -> AsyncScript:
        """The view's command on a pipeline (batched with others); returns the script it uses."""
        queue_script(pipe, self._view, self._view_keys(connection_ids, model))
        return self._view

    def parse_view(self, raw: list[Any], connection_ids: list[str], model: str | None) -> dict[str, Cooldown]:
        found = [Cooldown(int(raw[i * 3]) / 1000, int(raw[i * 3 + 1]), text(raw[i * 3 + 2]))
                 for i in range(len(raw) // 3)]
        width = 2 if model else 1
        return {cid: max(found[i * width:(i + 1) * width], key=lambda c: c.remaining_s)
                for i, cid in enumerate(connection_ids)}

    async def locked_models(self, connection_ids: list[str], model: str) -> set[str]:
        """Which of these connections have `model` locked (404 recently)."""
        if not connection_ids:
            return set()
        return self.parse_locked(await self.queue_locked(self._redis, connection_ids, model), connection_ids)

    def queue_locked(self, client: Any, connection_ids: list[str], model: str) -> Any:
        return client.mget([self._keys.model_lock(c, model) for c in connection_ids])

    def parse_levels(self, raw: list[Any], connection_ids: list[str], model: str | None) -> dict[str, int]:
        """Each connection's highest backoff level (its own or the model's): 0 means that a
        success has nothing to heal."""
        width = 2 if model else 1
        levels = [int(raw[i * 3 + 1]) for i in range(len(raw) // 3)]
        return {cid: max(levels[i * width:(i + 1) * width]) for i, cid in enumerate(connection_ids)}

    def parse_locked(self, values: list[Any], connection_ids: list[str]) -> set[str]:
        return {cid for cid, value in zip(connection_ids, values, strict=True) if value is not None}

    async def reset(self) -> int:
        keys = []
        for prefix in (self._keys.cooldown_prefix, self._keys.model_lock_prefix):
            keys += [k async for k in self._redis.scan_iter(match=prefix + "*", count=500)]
        return int(await self._redis.delete(*keys)) if keys else 0

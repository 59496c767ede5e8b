"""Account (connection) selection within a provider: enabled, allowed for this key, not cooling
down, breaker not open, model not locked on it, rate-limit headroom left at the provider (as its
own headers last said) — by priority, healthy before degraded, then the
least recently used. All state comes from Redis in one pipelined round trip."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import redis.asyncio as redis

from omniroute.config.snapshot import ApiKey, Connection
from omniroute.limits.breaker import DEGRADED, OPEN, Breakers
from omniroute.limits.cooldown import Cooldowns
from omniroute.limits.headroom import Headroom
from omniroute_router.resolve import Target, enabled_connections


@dataclass
class Availability:
    usable: list[Connection] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)  # connection name → why not usable
    retry_after_s: float = 0.0  # when the first unusable one frees up (0: unknown / never)


def key_may_use(connection: Connection, key: ApiKey | None) -> bool:
    allowed = connection.settings.get("allowed_keys")
    if not isinstance(allowed, list):
        return True
    return key is not None and (key.name in allowed or key.id in allowed)


class Accounts:
    def __init__(self, client: redis.Redis, env: str, breakers: Breakers, cooldowns: Cooldowns,
                 headroom: Headroom | None = None) -> None:
        self._redis = client
        self._lru = f"{env}:lastused"
        self._breakers = breakers
        self._cooldowns = cooldowns
        self._headroom = headroom or Headroom(client, env)

    async def available(self, target: Target, key: ApiKey | None) -> Availability:
        result = Availability()
        candidates = []
        for connection in enabled_connections(target.provider):
            if key_may_use(connection, key):
                candidates.append(connection)
            else:
                result.reasons[connection.name] = "not allowed for this key"
        if not target.provider.connections:
            result.reasons["*"] = "the provider has no connection"
        if not candidates:
            return result
        ids = [c.id for c in candidates]
        # Everything about these connections in one pipelined round trip.
        async with self._redis.pipeline(transaction=False) as pipe:
            await self._cooldowns.queue_view(pipe, ids, target.model)
            await self._breakers.queue_view(pipe, ids)
            await self._cooldowns.queue_locked(pipe, ids, target.model)
            pipe.zmscore(self._lru, ids)
            await self._headroom.queue_view(pipe, ids, target.model)
            raw_cooldowns, raw_breakers, raw_locked, used, raw_spent = await pipe.execute()
        cooldowns = self._cooldowns.parse_view(raw_cooldowns, ids, target.model)
        breakers = self._breakers.parse_view(raw_breakers, ids)
        locked = self._cooldowns.parse_locked(raw_locked, ids)
        spent = self._headroom.parse_view(raw_spent, ids)
        waits = []
        ranked = []
        for connection, last_used in zip(candidates, used, strict=True):
            cooldown, breaker = cooldowns[connection.id], breakers[connection.id]
            if connection.id in locked:
                result.reasons[connection.name] = f"model {target.model!r} not found on it (locked)"
            elif cooldown.active:
                result.reasons[connection.name] = (f"cooling down {cooldown.remaining_s:.1f}s "
                                                   f"({cooldown.reason})")
                waits.append(cooldown.remaining_s)
            elif breaker.state == OPEN:
                result.reasons[connection.name] = f"circuit open for {breaker.retry_after_s:.1f}s"
                waits.append(breaker.retry_after_s)
            elif connection.id in spent:
                no_room = spent[connection.id]
                result.reasons[connection.name] = f"{no_room.reason} for {no_room.remaining_s:.1f}s"
                waits.append(no_room.remaining_s)
            else:
                ranked.append(((connection.priority, breaker.state == DEGRADED, last_used or 0.0),
                               connection))
        result.usable = [c for _, c in sorted(ranked, key=lambda item: item[0])]
        result.retry_after_s = min(waits) if waits else 0.0
        return result

    async def touch(self, connection: Connection) -> None:
        await self._redis.zadd(self._lru, {connection.id: time.time()})

    async def unhealthy(self, target: Target) -> float:
        """Share of the target's connections that cannot take a request now (for p2c)."""
        connections = enabled_connections(target.provider)
        if not connections:
            return 1.0
        availability = await self.available(target, None)
        return 1.0 - len(availability.usable) / len(connections)

"""Account (connection) selection within a provider: enabled, allowed for this key, not cooling
down, breaker not open, model not locked on it, rate-limit headroom left at the provider (as its
own headers last said) — by priority, healthy before degraded, then the
least recently used. All state comes from Redis in one pipelined round trip."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from omniroute import shared_state
from omniroute.config.snapshot import ApiKey, Connection
from omniroute.shared_state.breaker import CLOSED, DEGRADED, HALF_OPEN, OPEN, Breakers, BreakerState
from omniroute.shared_state.cooldown import Cooldowns
from omniroute.shared_state.headroom import Headroom
from omniroute_router.selection.resolve import Target, enabled_connections


@dataclass(frozen=True, slots=True)
class Health:
    """A connection's shared state as the selection read it."""

    breaker: BreakerState
    cooldown_level: int  # the highest backoff level of the connection or of the model on it

    @property
    def needs_claim(self) -> bool:
        """Due for its half-open probe, which one request must claim atomically (try_pass);
        a closed or degraded breaker lets every request through without a write."""
        return self.breaker.state == HALF_OPEN

    @property
    def spotless(self) -> bool:
        """Nothing that a success would heal: no breaker failures, no backoff level."""
        return self.breaker.state == CLOSED and self.breaker.failures == 0 and self.cooldown_level == 0


@dataclass
class Availability:
    usable: list[Connection] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)  # connection name → why not usable
    retry_after_s: float = 0.0  # when the first unusable one frees up (0: unknown / never)
    health: dict[str, Health] = field(default_factory=dict)  # connection id → its state, as read
    shared: bool = False  # several candidate connections: least-recently-used order matters


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
        self._scripts: list[AsyncScript] = []

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
        try:
            raw_cooldowns, raw_breakers, raw_locked, used, raw_spent = await self._read(ids, target.model)
        except NoScriptError:  # Redis restarted or was flushed since the scripts were loaded
            await shared_state.load_scripts(self._redis, self._scripts)
            raw_cooldowns, raw_breakers, raw_locked, used, raw_spent = await self._read(ids, target.model)
        cooldowns = self._cooldowns.parse_view(raw_cooldowns, ids, target.model)
        breakers = self._breakers.parse_view(raw_breakers, ids)
        levels = self._cooldowns.parse_levels(raw_cooldowns, ids, target.model)
        result.health = {cid: Health(breakers[cid], levels[cid]) for cid in ids}
        result.shared = len(candidates) > 1
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

    async def _read(self, ids: list[str], model: str) -> list[Any]:
        """Everything about these connections in one pipelined round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            self._scripts = [self._cooldowns.queue_view(pipe, ids, model), self._breakers.queue_view(pipe, ids)]
            self._cooldowns.queue_locked(pipe, ids, model)
            pipe.zmscore(self._lru, ids)
            self._scripts.append(self._headroom.queue_view(pipe, ids, model))
            return list(await pipe.execute())

    async def touch(self, connection: Connection) -> None:
        await self._redis.zadd(self._lru, {connection.id: time.time()})

    async def unhealthy(self, target: Target) -> float:
        """Share of the target's connections that cannot take a request now (for p2c)."""
        connections = enabled_connections(target.provider)
        if not connections:
            return 1.0
        availability = await self.available(target, None)
        return 1.0 - len(availability.usable) / len(connections)

"""The router's shared Redis state: what every replica sees (one client per process)."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as redis

from omniroute import shared_state
from omniroute.settings import Settings
from omniroute.shared_state.breaker import Breakers
from omniroute.shared_state.cache import ExactCache
from omniroute.shared_state.cooldown import Cooldowns
from omniroute.shared_state.headroom import Headroom
from omniroute.shared_state.idempotency import Idempotency
from omniroute.shared_state.ratelimit import RateLimiter
from omniroute.shared_state.semantic_stats import SemanticStats
from omniroute_router.caches.semantic_store import SemanticStore
from omniroute_router.selection.combo_state import ComboState


@dataclass
class RouterState:
    redis: redis.Redis
    limiter: RateLimiter
    breakers: Breakers
    cooldowns: Cooldowns
    idempotency: Idempotency
    cache: ExactCache
    combos: ComboState
    headroom: Headroom
    semantic_stats: SemanticStats
    semantic_store: SemanticStore  # Qdrant, opened on first use

    @classmethod
    def connect(cls, settings: Settings) -> RouterState:
        client = shared_state.connect(settings)
        env = settings.env
        return cls(redis=client, limiter=RateLimiter(client, env), breakers=Breakers(client, env),
                   cooldowns=Cooldowns(client, env), idempotency=Idempotency(client, env),
                   cache=ExactCache(client, env), combos=ComboState(client, env),
                   headroom=Headroom(client, env), semantic_stats=(stats := SemanticStats(client, env)),
                   semantic_store=SemanticStore(settings, stats))

    async def close(self) -> None:
        await self.semantic_store.close()
        await self.redis.aclose()

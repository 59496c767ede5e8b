"""Where a connection's health lives in Redis: its cooldowns (its own, and one per model), its
model locks (a 404 for a model), its breaker and the rate-limit headroom its provider reported
(per model). The one owner of that key layout: the routers write through `Cooldowns`,
`Breakers` and `Headroom`, which build their keys here; the admin reads them the
same way and clears them (`forget`) when the connection's configuration changes, since state
earned with a wrong base URL or credential says nothing about the corrected one. Redis is
shared by every replica, so clearing once clears it for all of them."""

from __future__ import annotations

import re

import redis.asyncio as redis


def _glob_literal(text: str) -> str:
    """`text` matched literally by a SCAN pattern (a connection id may hold `*`, `?`, `[`)."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class HealthKeys:
    def __init__(self, env: str) -> None:
        self.cooldown_prefix = f"{env}:cooldown:"
        self.model_lock_prefix = f"{env}:modellock:"
        self.breaker_prefix = f"{env}:breaker:"
        self.headroom_prefix = f"{env}:headroom:"

    def cooldown(self, connection_id: str, model: str | None = None) -> str:
        return self.cooldown_prefix + connection_id + (f"|{model}" if model else "")

    def model_lock(self, connection_id: str, model: str) -> str:
        return f"{self.model_lock_prefix}{connection_id}:{model}"

    def breaker(self, connection_id: str) -> str:
        return self.breaker_prefix + connection_id

    def headroom(self, connection_id: str, model: str) -> str:
        return f"{self.headroom_prefix}{connection_id}|{model}"

    def connection_patterns(self, connection_id: str) -> list[str]:
        """SCAN patterns for the per-model keys of one connection (cooldowns, model locks,
        headroom)."""
        literal = _glob_literal(connection_id)
        return [f"{_glob_literal(self.cooldown_prefix)}{literal}|*",
                f"{_glob_literal(self.model_lock_prefix)}{literal}:*",
                f"{_glob_literal(self.headroom_prefix)}{literal}|*"]


async def forget(client: redis.Redis, env: str, connection_ids: list[str]) -> dict[str, int]:
    """Clear every cooldown, model lock, breaker and headroom mark of these connections; how
    many of each."""
    keys = HealthKeys(env)
    cooldowns = [keys.cooldown(c) for c in connection_ids]
    locks: list[str] = []
    breakers = [keys.breaker(c) for c in connection_ids]
    headroom: list[str] = []
    for connection_id in connection_ids:
        cooldown_pattern, lock_pattern, headroom_pattern = keys.connection_patterns(connection_id)
        cooldowns += [k async for k in client.scan_iter(match=cooldown_pattern, count=500)]
        locks += [k async for k in client.scan_iter(match=lock_pattern, count=500)]
        headroom += [k async for k in client.scan_iter(match=headroom_pattern, count=500)]
    counts = {"cooldowns": 0, "modelLocks": 0, "breakers": 0, "headroom": 0}
    for name, group in (("cooldowns", cooldowns), ("modelLocks", locks), ("breakers", breakers),
                        ("headroom", headroom)):
        if group:
            counts[name] = int(await client.delete(*group))
    return counts

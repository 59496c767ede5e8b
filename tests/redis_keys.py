"""Tests leave nothing behind in the shared Redis. Every key a stack or a fixture writes starts
with its environment name and a colon (`settings.env + ":"`, omniroute.settings), so the fixture
that made up the name removes everything under it when it ends."""

from __future__ import annotations

import redis
import redis.asyncio

_BATCH = 500   # keys per UNLINK: one round trip for a typical test, bounded for a large one


def _pattern(env: str) -> str:
    # Environment names in tests are letters, digits and '-' (tests.support.unique_name); escape
    # the glob characters anyway so that a pattern can never reach beyond its own prefix.
    escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in env)
    return f"{escaped}:*"


def env_keys(redis_url: str, env: str) -> list[bytes]:
    """Every key under `env:` (SCAN, never KEYS: the server stays responsive)."""
    with redis.Redis.from_url(redis_url) as client:
        return list(client.scan_iter(match=_pattern(env), count=1000))


def delete_env_keys(redis_url: str, env: str) -> int:
    """Remove every key under `env:`; returns how many there were."""
    with redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(match=_pattern(env), count=1000))
        for start in range(0, len(keys), _BATCH):
            client.unlink(*keys[start:start + _BATCH])
    return len(keys)


async def delete_env_keys_async(redis_url: str, env: str) -> int:
    """`delete_env_keys` for async fixtures (no blocking call on their event loop)."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=_pattern(env), count=1000)]
        for start in range(0, len(keys), _BATCH):
            await client.unlink(*keys[start:start + _BATCH])
    finally:
        await client.aclose()
    return len(keys)

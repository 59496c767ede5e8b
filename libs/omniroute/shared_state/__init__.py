"""Shared state in Redis that every replica must agree on: rate limits, circuit breakers,
cooldowns, headroom, idempotency, the exact cache, budgets and budget holds. Each module is one
concept; every update is one atomic Lua script (registered once per process, run with EVALSHA) and every key starts with
`settings.env + ":"` so that stacks can share one Redis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript

from omniroute.settings import Settings

# Every script reads the clock from Redis (TIME), so replicas on machines whose clocks differ
# still agree on windows, cooldowns and breaker timeouts.
NOW_MS = """
local __t = redis.call('TIME')
local now = tonumber(__t[1]) * 1000 + math.floor(tonumber(__t[2]) / 1000)
"""


def connect(settings: Settings) -> redis.Redis:
    """The process's one Redis client (one connection pool), shared by every limits object.

    A connection error is retried on a fresh connection (a few times, quickly): after Redis
    restarts, every pooled connection is dead, and the first command on each must not fail the
    request that happened to use it."""
    return redis.Redis.from_url(
        settings.redis_url, max_connections=256, health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), 3),
        retry_on_error=[redis_errors.ConnectionError, redis_errors.TimeoutError])


def text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def queue_script(pipe: Any, script: AsyncScript, keys: Sequence[str], args: Sequence[Any] = ()) -> None:
    """`script` on a pipeline as a bare EVALSHA. (Calling the script object on a pipeline makes
    redis-py send SCRIPT EXISTS before every execute: one more round trip per pipeline.) A Redis
    that lost its scripts (restart, flush) answers NoScriptError: `load_scripts`, then run again."""
    pipe.evalsha(script.sha, len(keys), *keys, *args)


async def load_scripts(client: redis.Redis, scripts: Sequence[AsyncScript]) -> None:
    for script in scripts:
        await client.script_load(script.script)

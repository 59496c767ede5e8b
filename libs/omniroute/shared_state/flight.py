"""Single flight across replicas: of several identical requests, one (the owner) does the work
and stores its result; the others wait for that result instead of calling upstream again.

One script decides atomically: the stored result if there is one, else the lock (SET NX with a
lease, so a crashed owner frees it), else "busy". Waiters poll that script: simple, and it keeps
working whichever replica the owner runs on and whether or not the owner survives."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import redis.asyncio as redis

_BEGIN = """
local value = redis.call('GET', KEYS[1])
if value then return {1, value} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', tonumber(ARGV[2])) then return {2, ''} end
return {3, ''}
"""

_FINISH = """
if ARGV[2] ~= '' then redis.call('SET', KEYS[1], ARGV[2], 'PX', tonumber(ARGV[3])) end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
"""

POLL_S = 0.02


@dataclass(frozen=True, slots=True)
class Outcome:
    owner: bool            # True: do the work, then finish(); False: `value` is the result
    value: bytes | None


class Flights:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self.prefix = prefix  # e.g. "<env>:idem:"
        self._begin = client.register_script(_BEGIN)
        self._finish = client.register_script(_FINISH)

    def _keys(self, key: str) -> list[str]:
        return [f"{self.prefix}{key}:r", f"{self.prefix}{key}:l"]

    async def begin(self, key: str, owner: str, *, lease_s: float, wait_s: float) -> Outcome:
        """The stored result, or ownership; waits up to `wait_s` while another owner works
        (then takes over: the caller will not wait forever for a stuck owner)."""
        deadline = time.monotonic() + wait_s
        while True:
            kind, value = await self._begin(keys=self._keys(key), args=[owner, int(lease_s * 1000)])
            if int(kind) == 1:
                return Outcome(False, bytes(value))
            if int(kind) == 2 or time.monotonic() >= deadline:
                return Outcome(True, None)
            await asyncio.sleep(POLL_S)

    async def peek(self, key: str) -> bytes | None:
        value = await self._redis.get(self._keys(key)[0])
        return value.encode() if isinstance(value, str) else value

    async def finish(self, key: str, owner: str, value: bytes | None, ttl_s: float) -> None:
        """Store the result (None: nothing worth keeping, e.g. a failure) and free the lock, so
        that a waiter either reads the result or takes over."""
        await self._finish(keys=self._keys(key), args=[owner, value or b"", max(1, int(ttl_s * 1000))])

    async def count(self) -> int:
        return sum([1 async for _ in self._redis.scan_iter(match=self.prefix + "*:r", count=500)])

    async def clear(self) -> int:
        keys = [k async for k in self._redis.scan_iter(match=self.prefix + "*", count=500)]
        return int(await self._redis.delete(*keys)) if keys else 0

"""The semantic cache's shared bookkeeping, in Redis: hit/miss counts, the entry count the
routers last saw, and a generation number.

The vectors live in Qdrant, which in local mode only the one router process that opened the
path can read. So the admin service never touches Qdrant: `GET /api/cache` reads these
counters, and `DELETE /api/cache` bumps the generation — every router then ignores entries of an
older generation at once and deletes them from Qdrant when it next sees the new number."""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis


class SemanticStats:
    def __init__(self, client: redis.Redis, env: str) -> None:
        self._redis = client
        self._stats = f"{env}:semcache:stats"
        self._gen = f"{env}:semcache:gen"
        self._entries = f"{env}:semcache:entries"

    async def generation(self) -> int:
        return int(await self._redis.get(self._gen) or 0)

    async def count(self, hit: bool) -> None:
        await self._redis.hincrby(self._stats, "hit" if hit else "miss", 1)

    async def set_entries(self, entries: int) -> None:
        await self._redis.set(self._entries, entries)

    async def stats(self) -> dict[str, Any]:
        raw = await self._redis.hgetall(self._stats)
        hits, misses = int(raw.get(b"hit", 0)), int(raw.get(b"miss", 0))
        total = hits + misses
        return {"entries": int(await self._redis.get(self._entries) or 0), "hits": hits, "misses": misses,
                "hitRate": round(hits / total, 4) if total else 0.0}

    async def clear(self) -> int:
        """Forget every entry (by generation) and the counts; returns the entries dropped."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self._entries)
            pipe.incr(self._gen)
            pipe.delete(self._stats)
            pipe.set(self._entries, 0)
            entries, *_ = await pipe.execute()
        return int(entries or 0)

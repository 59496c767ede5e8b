"""The semantic cache's vectors in Qdrant, through qdrant-client.

Where: `QDRANT_URL` unset → local mode in `.omniroute/qdrant/<env>`; an http(s) URL → a Qdrant
server (with `QDRANT_API_KEY` when set); ":memory:" → this process only; anything else → a local
path. `QDRANT_COLLECTION_PREFIX` goes before every collection name.

Local mode lets ONE process open a path. With several routers a Qdrant server is required
(Kubernetes: the official Qdrant chart, QDRANT_URL set for every router). To keep local mode
safe when a second router shares the path anyway, the store is opened lazily on the first
semantic request, and a router that finds the path taken logs it once and runs without the
semantic cache (every request misses; answers stay correct) instead of failing.

Entries: one point per (key scope, model, parameters, prompt text), payload = the cached answer
plus the fields a hit must match; `expires_at` enforces the TTL at lookup and a periodic sweep
deletes expired points; past `max_entries` the oldest are evicted (down to 90 %, so that a full
cache does not scan on every insert). Qdrant errors never fail a request: they are misses."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qdrant_client import AsyncQdrantClient, models

from omniroute.settings import Settings
from omniroute.shared_state.semantic_stats import SemanticStats

log = logging.getLogger("omniroute.router")

SWEEP_EVERY_S = 60.0
EVICT_TO = 0.9  # share of max_entries left after an eviction


@dataclass(frozen=True, slots=True)
class Scope:
    """What a hit must share with the request besides a similar prompt."""

    key: str
    model: str
    shape: str  # hash of the request's non-message parameters
    generation: int

    def conditions(self, now: float) -> models.Filter:
        return models.Filter(must=[
            models.FieldCondition(key="scope", match=models.MatchValue(value=self.key)),
            models.FieldCondition(key="model", match=models.MatchValue(value=self.model)),
            models.FieldCondition(key="shape", match=models.MatchValue(value=self.shape)),
            models.FieldCondition(key="gen", match=models.MatchValue(value=self.generation)),
            models.FieldCondition(key="expires_at", range=models.Range(gt=now))])


@dataclass(frozen=True, slots=True)
class Hit:
    entry: bytes
    similarity: float


def location(settings: Settings) -> dict[str, Any]:
    """qdrant-client arguments for QDRANT_URL."""
    value = settings.qdrant_url.strip()
    if value.startswith(("http://", "https://")):
        return {"url": value, "api_key": settings.qdrant_api_key or None}
    if value == ":memory:":
        return {"location": ":memory:"}
    return {"path": value or str(Path(".omniroute") / "qdrant" / settings.env)}


class SemanticStore:
    def __init__(self, settings: Settings, stats: SemanticStats) -> None:
        self._settings = settings
        self._stats = stats
        self._client: AsyncQdrantClient | None = None
        self._unavailable = ""  # why this process runs without the store
        self._opening = asyncio.Lock()
        self._ready: set[str] = set()  # collections known to exist
        self._generation: int | None = None
        self._last_sweep = 0.0
        self._server = "url" in location(settings)

    @property
    def unavailable(self) -> str:
        return self._unavailable

    async def ready(self) -> bool:
        """Open the store on first use; False when this process cannot use it."""
        return await self._open() is not None

    def collection(self, embedder: str) -> str:
        name = re.sub(r"[^A-Za-z0-9_-]", "_", f"{self._settings.env}_semcache_{embedder}")
        return self._settings.qdrant_collection_prefix + name

    async def _open(self) -> AsyncQdrantClient | None:
        if self._client is not None or self._unavailable:
            return self._client
        async with self._opening:
            if self._client is None and not self._unavailable:
                where = location(self._settings)
                try:
                    if "path" in where:
                        await asyncio.to_thread(Path(where["path"]).mkdir, parents=True, exist_ok=True)
                    client = AsyncQdrantClient(**where)
                    await client.get_collections()
                    self._client = client
                except Exception as exc:  # qdrant-client raises RuntimeError, httpx, grpc … errors
                    shown = {k: v for k, v in where.items() if k != "api_key"}  # never log the key
                    self._unavailable = f"{shown}: {exc}"
                    log.error("semantic cache off in this router: Qdrant cannot be opened (%s). "
                              "Several routers need a Qdrant server (QDRANT_URL).", self._unavailable)
        return self._client

    async def lookup(self, embedder: str, vector: list[float], scope: Scope, threshold: float) -> Hit | None:
        client = await self._open()
        name = self.collection(embedder)
        if client is None:
            return None
        try:
            await self._follow_generation(client, scope.generation)
            if not await self._exists(client, name):
                return None
            found = await client.query_points(name, query=vector, limit=1, score_threshold=threshold,
                                              query_filter=scope.conditions(time.time()),
                                              with_payload=True)  # a field list: not every server
        except Exception as exc:
            log.warning("semantic cache lookup failed (a miss): %s", exc)
            return None
        if not found.points:
            return None
        point = found.points[0]
        entry = (point.payload or {}).get("entry")
        return Hit(entry.encode(), point.score) if isinstance(entry, str) else None

    async def put(self, embedder: str, vector: list[float], point_id: str, scope: Scope, entry: bytes,
                  ttl_s: float, max_entries: int) -> None:
        client = await self._open()
        name = self.collection(embedder)
        if client is None:
            return
        now = time.time()
        payload = {"scope": scope.key, "model": scope.model, "shape": scope.shape, "gen": scope.generation,
                   "created_at": now, "expires_at": now + ttl_s, "entry": entry.decode()}
        try:
            await self._create(client, name, len(vector))
            point = models.PointStruct(id=point_id, vector=vector, payload=payload)
            await client.upsert(name, points=[point])
            await self._maintain(client, name, max_entries, now)
        except Exception as exc:
            log.warning("semantic cache store failed (answer not kept): %s", exc)

    async def _exists(self, client: AsyncQdrantClient, name: str) -> bool:
        if name not in self._ready and await client.collection_exists(name):
            self._ready.add(name)
        return name in self._ready

    async def _create(self, client: AsyncQdrantClient, name: str, size: int) -> None:
        if await self._exists(client, name):
            return
        await client.create_collection(name, vectors_config=models.VectorParams(
            size=size, distance=models.Distance.COSINE))
        if self._server:  # payload indexes only matter (and only exist) on a server
            for field, schema in (("scope", models.PayloadSchemaType.KEYWORD),
                                  ("model", models.PayloadSchemaType.KEYWORD),
                                  ("shape", models.PayloadSchemaType.KEYWORD),
                                  ("gen", models.PayloadSchemaType.INTEGER),
                                  ("expires_at", models.PayloadSchemaType.FLOAT)):
                await client.create_payload_index(name, field, schema)
        self._ready.add(name)

    async def _follow_generation(self, client: AsyncQdrantClient, generation: int) -> None:
        """After DELETE /api/cache (a new generation), drop the older entries here too."""
        if self._generation == generation:
            return
        self._generation = generation
        stale = models.Filter(must_not=[models.FieldCondition(key="gen",
                                                              match=models.MatchValue(value=generation))])
        for name in [c.name for c in (await client.get_collections()).collections]:
            if name.startswith(self.collection("")):
                await client.delete(name, points_selector=models.FilterSelector(filter=stale))

    async def _maintain(self, client: AsyncQdrantClient, name: str, max_entries: int, now: float) -> None:
        if now - self._last_sweep >= SWEEP_EVERY_S:
            self._last_sweep = now
            expired = models.Filter(must=[models.FieldCondition(key="expires_at",
                                                                range=models.Range(lte=now))])
            await client.delete(name, points_selector=models.FilterSelector(filter=expired))
        count = (await client.count(name, exact=True)).count
        if count > max_entries:
            points, _ = await client.scroll(name, limit=count, with_payload=True)
            points.sort(key=lambda p: float((p.payload or {}).get("created_at", 0)))
            oldest = [p.id for p in points[:count - int(max_entries * EVICT_TO)]]
            await client.delete(name, points_selector=models.PointIdsList(points=oldest))
            count -= len(oldest)
        await self._stats.set_entries(count)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

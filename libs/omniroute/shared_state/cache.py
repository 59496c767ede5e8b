"""The exact response cache: key = hash of (key scope, model, normalised request, variant). Two
concurrent identical cacheable requests make one upstream call (single flight); the value is the
canonical `chat.completion`, served as JSON or re-chunked as a stream, or an answer in the
caller's own format (passthrough) for requests of that format and stream flag (the variant)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson
import redis.asyncio as redis

from omniroute.config.routing_spec import CacheSettings
from omniroute.shared_state.flight import Flights, Outcome

# Fields that change how the answer is delivered or attributed, not what it says.
_DELIVERY_FIELDS = frozenset({"stream", "stream_options", "user", "metadata", "store",
                              "service_tier", "parallel_tool_calls_hint"})
_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)")


def normalise(body: dict[str, Any]) -> Any:
    """The request as far as its answer is concerned: delivery fields dropped, nulls dropped,
    text-only content part lists folded into a string (two spellings of one prompt match)."""
    def fold(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fold(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            if value and all(isinstance(p, dict) and p.get("type") == "text" and set(p) <= {"type", "text"}
                             for p in value):
                return "".join(str(p.get("text", "")) for p in value)
            return [fold(v) for v in value]
        return value
    return fold({k: v for k, v in body.items() if k not in _DELIVERY_FIELDS and k != "model"})


def cache_key(scope: str, model: str, body: dict[str, Any], variant: str = "") -> str:
    """`variant`: which requests the answer fits besides its prompt (the router's client format
    and stream flag when the answer may be in the caller's own format; "" for canonical)."""
    payload = orjson.dumps([scope, model, normalise(body), variant], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(payload).hexdigest()


def bypassed(options: dict[str, str]) -> bool:
    """X-OmniRoute-No-Cache: true, or Cache-Control: no-cache / no-store."""
    if options.get("no_cache", "").strip().lower() in {"1", "true", "yes"}:
        return True
    control = options.get("cache_control", "").lower()
    return "no-cache" in control or "no-store" in control


def cacheable(body: dict[str, Any], options: dict[str, str], settings: CacheSettings) -> float | None:
    """The TTL in seconds when this request may be answered from / stored in the cache."""
    if not settings.enabled or settings.mode == "off" or bypassed(options):
        return None
    if body.get("n") not in (None, 1):
        return None
    asked = _MAX_AGE.search(options.get("cache_control", "").lower())
    if asked:  # the caller asked for caching explicitly, with its own TTL
        return float(min(int(asked.group(1)), settings.ttl_s)) or None
    if settings.mode == "always":
        return float(settings.ttl_s)
    temperature = body.get("temperature")
    return float(settings.ttl_s) if isinstance(temperature, int | float) and temperature == 0 else None


class ExactCache:
    def __init__(self, client: redis.Redis, env: str) -> None:
        self._redis = client
        self.flights = Flights(client, f"{env}:cache:")
        self._stats = f"{env}:cachestats"

    async def begin(self, key: str, request_id: str, *, lease_s: float, wait_s: float) -> Outcome:
        outcome = await self.flights.begin(key, request_id, lease_s=lease_s, wait_s=wait_s)
        await self._redis.hincrby(self._stats, "miss" if outcome.owner else "hit", 1)
        return outcome

    async def finish(self, key: str, request_id: str, value: bytes | None, ttl_s: float) -> None:
        await self.flights.finish(key, request_id, value, ttl_s)

    async def stats(self) -> dict[str, Any]:
        raw = await self._redis.hgetall(self._stats)
        hits = int(raw.get(b"hit", 0))
        misses = int(raw.get(b"miss", 0))
        entries = await self.flights.count()
        total = hits + misses
        return {"entries": entries, "hits": hits, "misses": misses,
                "hitRate": round(hits / total, 4) if total else 0.0}

    async def clear(self) -> int:
        removed = await self.flights.clear()
        await self._redis.delete(self._stats)
        return removed

"""Each provider's discovered model list, shared in Redis: the admin reads every provider's own
list in the background (through an executor) and writes it here; every router reads them here in
the background for /v1/models, /v1beta/models and /api/tags. So a list is never read from a
provider on a request's path, and one read serves every replica.

One JSON document per provider, `<env>:provider-models:<provider id>`, with the last good list
and, when the last read failed, why and when: a provider whose list cannot be read keeps its last
good one. This module owns that key layout.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as redis

from omniroute.catalog import ProviderType

KEPT_S = 30 * 24 * 3600   # a deleted provider's list goes eventually; a live one is rewritten often
KINDS = ("chat", "embedding", "image", "audio")

# Name hints for the kind of a model a list gives by id only (checked in order; chat otherwise).
_HINTS = (("embedding", ("embed",)),
          ("image", ("dall-e", "gpt-image", "imagen", "image")),
          ("audio", ("whisper", "transcribe", "nova-", "tts")))


def key(env: str, provider: str) -> str:
    return f"{env}:provider-models:{provider}"


def fingerprint(provider: dict[str, Any]) -> str:
    """Of a provider's stored configuration (its connections included): a list read with another
    one is read again at once, so a fixed base_url or credential lists without waiting."""
    return hashlib.sha256(orjson.dumps(provider, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:16]


def kind_of(model: str, provider_type: ProviderType | None) -> str:
    """The kind of a listed model: the catalog's when it names it, else from the name."""
    for kind, names in (provider_type.models.items() if provider_type else ()):
        if model in names:
            return kind
    lowered = model.lower()
    for kind, hints in _HINTS:
        if any(hint in lowered for hint in hints):
            return kind
    return "chat"


@dataclass(frozen=True, slots=True)
class ModelList:
    provider: str
    models: tuple[tuple[str, str], ...] = ()   # (kind, model id), the last good list
    source: str = ""            # "provider" (its own list API) or "catalog" (a static type)
    fetched_at: float = 0.0     # when the last good list was read; 0: never
    error: str = ""             # why the last read failed; "" when it succeeded
    failed_at: float = 0.0
    config: str = ""            # the fingerprint of the configuration the last read used

    @property
    def attempted_at(self) -> float:
        return max(self.fetched_at, self.failed_at)

    def as_json(self) -> dict[str, object]:
        """What /api/providers/{id} shows."""
        return {"source": self.source, "count": len(self.models),
                "fetchedAt": round(self.fetched_at) or None, "error": self.error or None,
                "failedAt": round(self.failed_at) or None}

    def dumps(self) -> bytes:
        return orjson.dumps({"provider": self.provider, "models": [list(m) for m in self.models],
                             "source": self.source, "fetchedAt": self.fetched_at,
                             "error": self.error, "failedAt": self.failed_at, "config": self.config})

    @classmethod
    def loads(cls, raw: bytes | str) -> ModelList:
        doc = orjson.loads(raw)
        return cls(provider=str(doc["provider"]),
                   models=tuple((str(k), str(m)) for k, m in doc.get("models") or ()),
                   source=str(doc.get("source") or ""), fetched_at=float(doc.get("fetchedAt") or 0),
                   error=str(doc.get("error") or ""), failed_at=float(doc.get("failedAt") or 0),
                   config=str(doc.get("config") or ""))


class ModelLists:
    def __init__(self, client: redis.Redis, env: str) -> None:
        self._redis = client
        self._env = env

    async def read(self, provider: str) -> ModelList | None:
        return _parsed(await self._redis.get(key(self._env, provider)))

    async def read_all(self, providers: Iterable[str]) -> dict[str, ModelList]:
        names = list(providers)
        if not names:
            return {}
        raws = await self._redis.mget([key(self._env, p) for p in names])
        parsed = {name: _parsed(raw) for name, raw in zip(names, raws, strict=True)}
        return {name: listed for name, listed in parsed.items() if listed is not None}

    async def succeeded(self, provider: str, models: Iterable[tuple[str, str]], source: str,
                        config: str) -> ModelList:
        listed = ModelList(provider, tuple(dict.fromkeys(models)), source, fetched_at=time.time(),
                           config=config)
        await self._redis.set(key(self._env, provider), listed.dumps(), ex=KEPT_S)
        return listed

    async def failed(self, provider: str, error: str, config: str) -> ModelList:
        """Keeps the last good list, with why this read failed."""
        last = await self.read(provider) or ModelList(provider)
        listed = ModelList(provider, last.models, last.source, last.fetched_at, error, time.time(), config)
        await self._redis.set(key(self._env, provider), listed.dumps(), ex=KEPT_S)
        return listed


def _parsed(raw: bytes | str | None) -> ModelList | None:
    """None for no document, or one this version cannot read (an older layout: read again)."""
    if not raw:
        return None
    try:
        return ModelList.loads(raw)
    except (ValueError, KeyError, TypeError):
        return None

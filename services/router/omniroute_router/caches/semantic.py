"""The semantic cache around an answer: embed the prompt, look for a similar enough prompt of the
same key, model and parameters (and, for a client format other than OpenAI chat, the same format
and stream flag: its answer may have passed through in that format), replay its answer (as JSON
or as a stream) or produce the answer and keep it. Off by default; on for every key, for named keys, or per request (the
`semantic_cache` option, from X-OmniRoute-Semantic-Cache). Any failure of the embedder or of
Qdrant is a miss: the cache never fails a request."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import redis.asyncio as redis

from omniroute.config.routing_spec import CacheSettings
from omniroute.config.snapshot import ApiKey
from omniroute.shared_state.cache import bypassed, normalise
from omniroute.shared_state.semantic_stats import SemanticStats
from omniroute.v1 import common_pb2
from omniroute_router.caches.embedders import (
    Embedder,
    EmbeddingError,
    HashingEmbedder,
    MiniLMEmbedder,
    PromptTooLong,
)
from omniroute_router.caches.replay import Collector, cached_events, variant
from omniroute_router.caches.semantic_store import Scope, SemanticStore
from omniroute_router.pipeline.call import Call

log = logging.getLogger("omniroute.router")
Produce = Callable[[], AsyncIterator[common_pb2.AnswerEvent]]
_YES, _NO = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def wanted(settings: CacheSettings, key: ApiKey | None, options: dict[str, str],
           body: dict[str, Any]) -> bool:
    if bypassed(options) or body.get("n") not in (None, 1):
        return False
    asked = options.get("semantic_cache", "").strip().lower()
    if asked in _YES or asked in _NO:  # the request's own word wins, both ways
        return asked in _YES
    named = key is not None and (key.name in settings.semantic_keys or key.id in settings.semantic_keys)
    return settings.semantic_enabled or named


def prompt_text(body: dict[str, Any]) -> str:
    """The conversation as text, one line per message; "" when a message carries something that
    is not text (an image, audio …): such prompts are not compared by their words."""
    lines = []
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            return ""
        content = message.get("content")
        if isinstance(content, list):
            if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
                return ""
            content = "".join(str(p.get("text", "")) for p in content)
        text = content if isinstance(content, str) else ""
        if message.get("tool_calls"):
            text += " " + orjson.dumps(message["tool_calls"], option=orjson.OPT_SORT_KEYS).decode()
        lines.append(f"{message.get('role', '')}: {text}")
    return "\n".join(lines)


def shape_of(body: dict[str, Any], answer_variant: str = "") -> str:
    """Parameters other than the messages (tools, response format, temperature …) must be equal,
    and so must the answer's variant (`caches/replay.variant`: client format and stream flag)."""
    rest = normalise({k: v for k, v in body.items() if k != "messages"})
    return hashlib.sha256(orjson.dumps([rest, answer_variant], option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


class SemanticCache:
    def __init__(self, store: SemanticStore, stats: SemanticStats,
                 gateway_embedder: Callable[[str], Embedder], local: Embedder | None = None) -> None:
        self._store = store
        self._stats = stats
        self._hashing = HashingEmbedder()
        # The in-process default: the bundled sentence model when installed, else hashing.
        self._local = local or MiniLMEmbedder.installed() or self._hashing
        log.info("semantic cache: the local embedder is %s", self._local.name)
        self._gateway_embedder = gateway_embedder
        self._embedders: dict[str, Embedder] = {}

    def embedder(self, settings: CacheSettings) -> Embedder:
        if not settings.semantic_model:
            return self._local
        if settings.semantic_model not in self._embedders:
            self._embedders[settings.semantic_model] = self._gateway_embedder(settings.semantic_model)
        return self._embedders[settings.semantic_model]

    async def serve(self, settings: CacheSettings, call: Call,
                    produce: Produce) -> AsyncIterator[common_pb2.AnswerEvent]:
        """Replay a similar prompt's answer (call.cache_kind says so), or produce and keep it."""
        key, model, body, headers = call.key, call.requested, call.body, call.headers
        text = prompt_text(body)
        embedder = self.embedder(settings)
        vector: list[float] | None = None
        scope: Scope | None = None
        if not await self._store.ready():
            headers["x-omniroute-semantic-cache"] = "OFF"  # this replica cannot open Qdrant (logged)
        elif text:
            try:
                try:
                    vector = await embedder.embed(text)
                except PromptTooLong:  # beyond the model's window: compared by its words
                    embedder = self._hashing
                    vector = await embedder.embed(text)
                scope = Scope(key=key.id if key else "", model=model,
                              shape=shape_of(body, variant(call.upstream)),
                              generation=await self._stats.generation())
            except (EmbeddingError, redis.RedisError) as exc:
                log.warning("semantic cache skipped: %s", exc)
        if vector is None or scope is None:
            async for event in produce():
                yield event
            return
        hit = await self._store.lookup(embedder.name, vector, scope, settings.semantic_threshold)
        with contextlib.suppress(redis.RedisError):
            await self._stats.count(hit is not None)
        if hit is not None:
            call.cache_kind = "semantic"
            replay_headers = {**headers, "x-omniroute-cache": "HIT", "x-omniroute-semantic-cache": "HIT",
                              "x-omniroute-semantic-similarity": f"{hit.similarity:.4f}"}
            for event in cached_events(hit.entry, stream=call.upstream.stream, usage_chunk=call.usage_chunk,
                                       headers=replay_headers):
                yield event
            return
        headers["x-omniroute-semantic-cache"] = "MISS"
        collector = Collector()
        async for event in produce():
            collector.add(event)
            yield event
        entry = collector.entry()
        if entry is not None:
            point = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{scope.key}|{model}|{scope.shape}|{text}"))
            await self._store.put(embedder.name, vector, point, scope, entry, settings.semantic_ttl_s,
                                  settings.semantic_max_entries)

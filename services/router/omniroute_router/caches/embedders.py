"""Turning a prompt into a vector for the semantic cache.

Two embedders share one small interface:
- `HashingEmbedder` (the default): a hashing-trick bag of words and word pairs, in-process, no
  model, deterministic — the same text gives the same vector in every replica. It matches prompts
  that differ in case, punctuation, spacing or a few words; it does not know synonyms.
- `GatewayEmbedder`: a configured embedding model (`routing.cache.semantic_model`) called
  through the gateway's own executors (the embeddings operation), with the same account
  selection and fallback as any request. Its calls are the gateway's overhead: they are not
  billed to the caller's key.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import uuid
from typing import Protocol

import orjson

from omniroute.config.watcher import SnapshotHolder
from omniroute.executor_pool import ExecutorPool
from omniroute.v1 import common_pb2, router_pb2
from omniroute_router.dispatch.dispatch import Attempts, Dispatch, dispatch
from omniroute_router.errors import RoutingError
from omniroute_router.selection.accounts import Accounts
from omniroute_router.selection.plan import plan
from omniroute_router.selection.resolve import resolve
from omniroute_router.state import RouterState

_WORD = re.compile(r"\w+")


class EmbeddingError(Exception):
    """No vector for this prompt now: the request goes on without the semantic cache."""


class Embedder(Protocol):
    @property
    def name(self) -> str:
        """Names the vector space: vectors of two embedders must never be compared."""
        ...

    async def embed(self, text: str) -> list[float]: ...


class HashingEmbedder:
    def __init__(self, dimensions: int = 512) -> None:
        self.dimensions = dimensions

    @property
    def name(self) -> str:
        return f"hash{self.dimensions}"

    async def embed(self, text: str) -> list[float]:
        return self.vector(text)

    def vector(self, text: str) -> list[float]:
        words = _WORD.findall(text.lower())
        features = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
        vector = [0.0] * self.dimensions
        for feature in features:
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            index = int.from_bytes(digest[:4], "little") % self.dimensions
            vector[index] += 1.0 if digest[4] & 1 else -1.0  # signed: collisions cancel, not pile up
        norm = math.sqrt(sum(v * v for v in vector))
        return [v / norm for v in vector] if norm else vector


class GatewayEmbedder:
    def __init__(self, model: str, config: SnapshotHolder, pool: ExecutorPool, shared: RouterState,
                 accounts: Accounts, timeout_s: float = 30.0) -> None:
        self._model = model
        self._config = config
        self._pool, self._shared, self._accounts = pool, shared, accounts
        self._timeout_s = timeout_s

    @property
    def name(self) -> str:
        return "model-" + re.sub(r"[^A-Za-z0-9_.-]", "_", self._model)

    async def embed(self, text: str) -> list[float]:
        snapshot = self._config.current
        try:
            node = resolve(snapshot, self._model)
        except RoutingError as exc:
            raise EmbeddingError(f"embedding model {self._model!r}: {exc.message}") from exc
        request = router_pb2.ChatRequest(
            request_id=f"semcache-{uuid.uuid4().hex}", model=self._model,
            operation=common_pb2.OPERATION_EMBEDDINGS, client_format=common_pb2.OPENAI_CHAT,
            body=orjson.dumps({"model": self._model, "input": text}))
        context = Dispatch(pool=self._pool, shared=self._shared, accounts=self._accounts,
                           snapshot=snapshot, key=None, policies=[], default_timeout_s=self._timeout_s)
        steps = await plan(snapshot, node, self._shared.combos, self._accounts, self._model)
        answer: bytes | None = None
        async for event in dispatch(context, request, steps, Attempts()):
            kind = event.WhichOneof("kind")
            if kind == "error":
                raise EmbeddingError(f"embedding model {self._model!r}: {event.error.message}")
            if kind == "response":
                answer = event.response
        try:
            vector = orjson.loads(answer or b"{}")["data"][0]["embedding"]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise EmbeddingError(f"embedding model {self._model!r}: no vector in its answer") from exc
        if not isinstance(vector, list) or not vector:
            raise EmbeddingError(f"embedding model {self._model!r}: the vector is not a float list")
        return [float(v) for v in vector]

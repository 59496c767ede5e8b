"""The semantic cache against real qdrant-client local mode and real Redis, with the hashing
embedder: similar prompts hit above the threshold, scope (key, model, parameters), TTL, max size,
clearing by generation, replay as a stream, one process per local path. With the bundled sentence
model (the default when installed): paraphrases hit, different questions miss, a prompt beyond
the model's window is compared by its words."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from omniroute import shared_state
from omniroute.answers import chunks_of
from omniroute.config.routing_spec import CacheSettings
from omniroute.config.snapshot import ApiKey, ConfigSnapshot
from omniroute.settings import Settings
from omniroute.shared_state.semantic_stats import SemanticStats
from omniroute.v1 import common_pb2, router_pb2
from omniroute_router.caches.embedders import Embedder, HashingEmbedder, MiniLMEmbedder, PromptTooLong
from omniroute_router.caches.semantic import SemanticCache, prompt_text, wanted
from omniroute_router.caches.semantic_store import SemanticStore
from omniroute_router.pipeline.call import Call
from omniroute_router.pipeline.record import RequestRecord

KEY = ApiKey(id="key_a", name="alice", enabled=True, allowed_models=None, limits={}, budget=None,
             expires_at=None)
OTHER = dataclasses.replace(KEY, id="key_b", name="bob")
ON = CacheSettings(semantic_enabled=True, semantic_threshold=0.9)


class Upstream:
    """A stand-in for dispatch: counts calls, answers with the prompt's last words."""

    def __init__(self) -> None:
        self.calls = 0

    def produce(self, text: str) -> AsyncIterator[common_pb2.AnswerEvent]:
        async def run() -> AsyncIterator[common_pb2.AnswerEvent]:
            self.calls += 1
            yield common_pb2.AnswerEvent(start=common_pb2.ResponseStart(provider="p", connection="c",
                                                                         model="m"))
            body = {"id": "x", "object": "chat.completion", "model": "m",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": f"answer to {text}"}}]}
            yield common_pb2.AnswerEvent(response=orjson.dumps(body), format=common_pb2.OPENAI_CHAT)
            yield common_pb2.AnswerEvent(usage=common_pb2.Usage(input_tokens=3, output_tokens=4))
        return run()


@contextlib.asynccontextmanager
async def semantic_parts(settings: Settings, tmp_path: Path, local_embedder: Embedder | None):  # type: ignore[no-untyped-def]
    local = dataclasses.replace(settings, qdrant_url=str(tmp_path / "qdrant"))
    client = shared_state.connect(local)
    stats = SemanticStats(client, local.env)
    store = SemanticStore(local, stats)

    def no_gateway(model: str) -> Embedder:
        raise AssertionError("the default embedder is local")

    yield SemanticCache(store, stats, no_gateway, local_embedder), store, stats, local
    await store.close()
    keys = [k async for k in client.scan_iter(match=local.env + ":*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def parts(settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    async with semantic_parts(settings, tmp_path, HashingEmbedder()) as made:
        yield made


@pytest.fixture
async def sentence_parts(settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    assert MiniLMEmbedder.installed() is not None, "requirements.txt installs the sentence model"
    async with semantic_parts(settings, tmp_path, None) as made:  # None: the default
        yield made


async def ask(cache: SemanticCache, upstream: Upstream, text: str, *, key: ApiKey = KEY,
              model: str = "p/m", settings: CacheSettings = ON, stream: bool = False,
              **params: Any) -> tuple[dict[str, str], list[common_pb2.AnswerEvent], RequestRecord]:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **params}
    headers: dict[str, str] = {}
    record = RequestRecord(request_id="r", key_id=key.id, requested_model=model,
                           client_format=common_pb2.OPENAI_CHAT, stream=stream)
    call = Call(request=router_pb2.ChatRequest(request_id="r", model=model, stream=stream),
                snapshot=ConfigSnapshot(), headers=headers, key=key, requested=model, body=body,
                usage_chunk=True)
    events = [e async for e in cache.serve(settings, call, produce=lambda: upstream.produce(text))]
    for event in events:  # what the record stage does with the answer's events
        record.add(event)
    record.close(call)
    start = next(e.start for e in events if e.WhichOneof("kind") == "start")
    return {**headers, **start.headers}, events, record


async def test_a_similar_prompt_hits_within_its_scope_only(parts) -> None:  # type: ignore[no-untyped-def]
    cache, _, stats, _ = parts
    upstream = Upstream()
    first, _, _ = await ask(cache, upstream, "What is the capital city of France?")
    assert first["x-omniroute-semantic-cache"] == "MISS" and upstream.calls == 1

    again, events, record = await ask(cache, upstream, "what is the capital city of france")
    assert again["x-omniroute-semantic-cache"] == "HIT" and again["x-omniroute-cache"] == "HIT"
    assert float(again["x-omniroute-semantic-similarity"]) > 0.99
    assert record.cache_hit and record.provider == "p"
    assert record.to_event().cache_kind == "semantic"  # the cache-hits metric's `kind` label
    assert not [e for e in events if e.WhichOneof("kind") == "usage"]  # a hit is not billed
    answer = orjson.loads(next(e.response for e in events if e.WhichOneof("kind") == "response"))
    assert answer["choices"][0]["message"]["content"] == "answer to What is the capital city of France?"
    assert upstream.calls == 1

    # Below the threshold, another key, another model, other parameters: misses.
    for text, extra in (("What is the capital city of Spain and its population?", {}),
                        ("What is the capital city of France?", {"key": OTHER}),
                        ("What is the capital city of France?", {"model": "p/other"}),
                        ("What is the capital city of France?", {"temperature": 1.5})):
        headers, _, _ = await ask(cache, upstream, text, **extra)
        assert headers["x-omniroute-semantic-cache"] == "MISS", (text, extra)
    assert upstream.calls == 5
    assert (await stats.stats())["hits"] == 1 and (await stats.stats())["misses"] == 5


async def test_replayed_as_a_stream_when_the_caller_streams(parts) -> None:  # type: ignore[no-untyped-def]
    cache, _, _, _ = parts
    upstream = Upstream()
    await ask(cache, upstream, "tell me a story about a fox")
    headers, events, _ = await ask(cache, upstream, "Tell me a story about a fox!", stream=True)
    assert headers["x-omniroute-semantic-cache"] == "HIT"
    chunks = [orjson.loads(chunk.data) for e in events for chunk in chunks_of(e)]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert text == "answer to tell me a story about a fox"


async def test_ttl_max_size_and_clearing(parts) -> None:  # type: ignore[no-untyped-def]
    cache, _, stats, _ = parts
    upstream = Upstream()
    short = CacheSettings(semantic_enabled=True, semantic_threshold=0.9, semantic_ttl_s=1)
    await ask(cache, upstream, "a question that expires", settings=short)
    assert (await ask(cache, upstream, "a question that expires", settings=short))[0][
        "x-omniroute-semantic-cache"] == "HIT"
    await asyncio.sleep(1.1)
    assert (await ask(cache, upstream, "a question that expires", settings=short))[0][
        "x-omniroute-semantic-cache"] == "MISS"

    small = CacheSettings(semantic_enabled=True, semantic_threshold=0.9, semantic_max_entries=3)
    for i in range(5):
        await ask(cache, upstream, f"distinct question number {i} about topic {i * 7}", settings=small)
    assert (await stats.stats())["entries"] <= 3
    calls = upstream.calls
    await ask(cache, upstream, "distinct question number 4 about topic 28", settings=small)  # newest kept
    assert upstream.calls == calls

    assert await stats.clear() <= 3
    assert (await ask(cache, upstream, "distinct question number 4 about topic 28"))[0][
        "x-omniroute-semantic-cache"] == "MISS"  # the old generation is gone
    assert (await stats.stats())["entries"] == 1


async def test_a_second_process_on_the_same_local_path_runs_without_it(parts) -> None:  # type: ignore[no-untyped-def]
    cache, _, stats, local = parts
    upstream = Upstream()
    await ask(cache, upstream, "open the store first")  # the lazy open happens here
    # qdrant-client locks a local path per client, as it would for another router process.
    second = SemanticCache(SemanticStore(local, stats), stats, lambda model: HashingEmbedder())
    headers, _, _ = await ask(second, upstream, "open the store first")
    assert headers["x-omniroute-semantic-cache"] == "OFF" and upstream.calls == 2  # served, uncached
    assert "already accessed" in second._store.unavailable


def test_switches_and_prompt_text() -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
    assert not wanted(CacheSettings(), KEY, {}, body)
    assert wanted(CacheSettings(), KEY, {"semantic_cache": "true"}, body)
    assert wanted(CacheSettings(semantic_keys=["alice"]), KEY, {}, body)
    assert not wanted(CacheSettings(semantic_keys=["alice"]), OTHER, {}, body)
    assert not wanted(CacheSettings(semantic_enabled=True), KEY, {"semantic_cache": "false"}, body)
    assert not wanted(CacheSettings(semantic_enabled=True), KEY, {"no_cache": "true"}, body)
    assert not wanted(CacheSettings(semantic_enabled=True), KEY, {}, {**body, "n": 2})
    assert prompt_text({"messages": [{"role": "system", "content": "be brief"},
                                     {"role": "user", "content": [{"type": "text", "text": "hi"}]}]}) == \
        "system: be brief\nuser: hi"
    assert prompt_text({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:,"}}]}]}) == ""
    embedder = HashingEmbedder()
    assert embedder.vector("The quick brown fox") == embedder.vector("the quick, brown fox.")


async def test_the_sentence_model_hits_paraphrases_and_misses_other_questions(sentence_parts) -> None:  # type: ignore[no-untyped-def]
    cache, _, _, _ = sentence_parts
    upstream = Upstream()
    await ask(cache, upstream, "How do I reverse a list in Python?")
    for paraphrase in ("What's the way to reverse a Python list?", "How can I reverse a list in Python?"):
        headers, _, _ = await ask(cache, upstream, paraphrase)
        assert headers["x-omniroute-semantic-cache"] == "HIT", paraphrase  # at the default 0.95
    assert upstream.calls == 1
    for other in ("How do I sort a list in Python?", "How do I reverse a string in Python?",
                  "What is the capital of France?"):
        headers, _, _ = await ask(cache, upstream, other)
        assert headers["x-omniroute-semantic-cache"] == "MISS", other
    assert upstream.calls == 4
    # The words alone do not see that paraphrase: the hashing embedder would miss it.
    hashing = HashingEmbedder()
    asked, reworded = (hashing.vector(f"user: {t}") for t in ("How do I reverse a list in Python?",
                                                              "What's the way to reverse a Python list?"))
    assert sum(a * b for a, b in zip(asked, reworded, strict=True)) < 0.95


async def test_a_prompt_beyond_the_models_window_is_compared_by_its_words(sentence_parts) -> None:  # type: ignore[no-untyped-def]
    cache, _, _, _ = sentence_parts
    upstream = Upstream()
    long_prompt = " ".join(f"word{i}" for i in range(MiniLMEmbedder.MAX_TOKENS * 2)) + " and then a question"
    with pytest.raises(PromptTooLong):  # never cut to the window: its end would not count
        await MiniLMEmbedder.installed().embed(f"user: {long_prompt}")  # type: ignore[union-attr]
    await ask(cache, upstream, long_prompt)
    headers, _, _ = await ask(cache, upstream, long_prompt)
    assert headers["x-omniroute-semantic-cache"] == "HIT" and upstream.calls == 1

"""The exact cache stage: a request the settings do not cache passes through; a miss is marked
and its answer kept; a hit is replayed (marked) without reaching the next stages; an answer in
the caller's own format (passthrough) is kept and replayed as it came, keyed by its variant."""

from __future__ import annotations

from typing import Any, cast

import orjson

from omniroute.shared_state.cache import cache_key
from omniroute.shared_state.flight import Outcome
from omniroute.v1 import common_pb2, router_pb2
from omniroute_router.caches.replay import variant
from omniroute_router.pipeline.exact_cache import ExactCacheStage

from .stages import Answering, kinds, make_call, run, start

BODY = {"model": "p/m", "temperature": 0, "messages": [{"role": "user", "content": "hi"}]}
ANSWER = {"id": "x", "object": "chat.completion", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}]}


class FakeCache:
    def __init__(self, value: bytes | None = None) -> None:
        self.value = value
        self.finished: list[bytes | None] = []

    async def begin(self, key: str, request_id: str, *, lease_s: float, wait_s: float) -> Outcome:
        return Outcome(owner=self.value is None, value=self.value)

    async def finish(self, key: str, request_id: str, value: bytes | None, ttl_s: float) -> None:
        self.finished.append(value)


def whole() -> common_pb2.AnswerEvent:
    return common_pb2.AnswerEvent(response=orjson.dumps(ANSWER), format=common_pb2.OPENAI_CHAT)


def cached_call(body: dict[str, Any] = BODY) -> Any:
    call = make_call()
    call.body, call.requested = dict(body), "p/m"
    return call


async def test_an_uncacheable_request_passes_through() -> None:
    cache = FakeCache()
    events = await run(ExactCacheStage(cast(Any, cache), 5.0), cached_call({**BODY, "temperature": 1}),
                       Answering([start(), whole()]))
    assert kinds(events) == ["start", "response"] and cache.finished == []


async def test_a_miss_is_marked_and_kept() -> None:
    cache, call = FakeCache(), cached_call()
    await run(ExactCacheStage(cast(Any, cache), 5.0), call, Answering([start(), whole()]))
    assert call.headers["x-omniroute-cache"] == "MISS" and call.cache_kind == ""
    [kept] = cache.finished
    assert kept is not None and orjson.loads(kept)["body"]["choices"][0]["message"]["content"] == "hello"


async def test_a_hit_is_replayed_without_the_next_stages() -> None:
    entry = orjson.dumps({"provider": "p", "connection": "c1", "model": "m", "combo": "", "body": ANSWER})
    call, next = cached_call(), Answering([start()])
    events = await run(ExactCacheStage(cast(Any, FakeCache(entry)), 5.0), call, next)
    assert kinds(events) == ["start", "response"] and not next.calls
    assert events[0].start.headers["x-omniroute-cache"] == "HIT" and call.cache_kind == "exact"


def native_chunks() -> common_pb2.AnswerEvent:
    items = [common_pb2.Chunk(event="message_start", data=b'{"type":"message_start"}'),
             common_pb2.Chunk(event="message_stop", data=b'{"type":"message_stop"}')]
    return common_pb2.AnswerEvent(chunks=common_pb2.ChunkBatch(items=items), format=common_pb2.ANTHROPIC)


async def test_a_passed_through_stream_is_kept_and_replayed_as_it_came() -> None:
    cache, call = FakeCache(), cached_call()
    call.request.client_format, call.request.stream = common_pb2.ANTHROPIC, True
    await run(ExactCacheStage(cast(Any, cache), 5.0), call, Answering([start(), native_chunks()]))
    [kept] = cache.finished
    assert kept is not None
    replayed = await run(ExactCacheStage(cast(Any, FakeCache(kept)), 5.0), cached_call(), Answering())
    assert kinds(replayed) == ["start", "chunks"]
    assert replayed[1].format == common_pb2.ANTHROPIC and replayed[1].chunks == native_chunks().chunks


async def test_a_passed_through_whole_answer_is_replayed_in_its_format() -> None:
    native = common_pb2.AnswerEvent(response=b'{"type":"message","content":[]}', format=common_pb2.ANTHROPIC)
    cache = FakeCache()
    await run(ExactCacheStage(cast(Any, cache), 5.0), cached_call(), Answering([start(), native]))
    [kept] = cache.finished
    assert kept is not None
    replayed = await run(ExactCacheStage(cast(Any, FakeCache(kept)), 5.0), cached_call(), Answering())
    assert kinds(replayed) == ["start", "response"] and replayed[1] == native


def test_entries_of_another_client_format_or_stream_flag_are_other_keys() -> None:
    def key_of(client_format: int, stream: bool) -> str:
        request = router_pb2.ChatRequest(client_format=client_format, stream=stream)  # type: ignore[arg-type]
        return cache_key("k1", "p/m", BODY, variant(request))
    openai_keys = {key_of(common_pb2.OPENAI_CHAT, False), key_of(common_pb2.OPENAI_CHAT, True)}
    assert len(openai_keys) == 1  # canonical answers serve JSON and streams alike
    others = {key_of(f, s) for f in (common_pb2.ANTHROPIC, common_pb2.GEMINI) for s in (False, True)}
    assert len(others) == 4 and not others & openai_keys

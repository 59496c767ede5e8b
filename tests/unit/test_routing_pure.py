"""Pure routing pieces: strategy ordering, error classification, cache keys and cacheability,
answer encoding, request shaping."""

from __future__ import annotations

import random
from collections import Counter

from omniroute.config.routing_spec import CacheSettings, RoutingSettings
from omniroute.shared_state.cache import cache_key, cacheable, normalise
from omniroute.v1 import common_pb2
from omniroute_router.caches.replay import Collector, cached_events, decode_events, encode_events
from omniroute_router.dispatch.classify import Failure, classify, falls_back
from omniroute_router.pipeline.shaping import shape
from omniroute_router.selection.strategies import Shared, StepFacts, order

STEPS = [StepFacts("a", weight=80, price=5.0, p50_ms=300, used=4, unhealthy=0.0),
         StepFacts("b", weight=20, price=1.0, p50_ms=100, used=1, unhealthy=1.0),
         StepFacts("c", weight=0.0001, price=None, p50_ms=None, used=9, unhealthy=0.0)]


def test_deterministic_strategies() -> None:
    assert order("priority", STEPS, Shared()) == [0, 1, 2]
    assert order("cost-optimized", STEPS, Shared()) == [1, 0, 2]  # unknown price last
    assert order("latency-optimized", STEPS, Shared()) == [1, 0, 2]
    assert order("least-used", STEPS, Shared()) == [1, 0, 2]
    assert order("round-robin", STEPS, Shared(counter=4)) == [1, 2, 0]
    assert order("lkgp", STEPS, Shared(last_good="c")) == [2, 0, 1]
    assert order("fill-first", STEPS, Shared(current="b")) == [1, 2, 0]
    assert order("unknown", STEPS, Shared()) == [0, 1, 2]
    assert order("priority", [], Shared()) == []


def test_random_strategies_are_permutations_with_the_right_bias() -> None:
    rng = random.Random(7)
    firsts = Counter(order("weighted", STEPS, Shared(), rng)[0] for _ in range(2000))
    assert 0.74 < firsts[0] / 2000 < 0.86 and firsts[2] < 10
    for strategy in ("random", "p2c", "weighted"):
        assert sorted(order(strategy, STEPS, Shared(), rng)) == [0, 1, 2]
    # p2c never puts the unhealthy one of its pair first.
    for _ in range(200):
        picked = order("p2c", STEPS[:2], Shared(), rng)
        assert picked[0] == 0


def test_classification() -> None:
    def err(status: int, **kw: object) -> common_pb2.Error:
        return common_pb2.Error(status=status, **kw)  # type: ignore[arg-type]
    assert classify(err(429)) is Failure.RATE_LIMITED
    assert classify(err(401)) is classify(err(403)) is Failure.AUTH
    assert classify(err(404)) is Failure.MODEL_NOT_FOUND
    assert classify(err(404, code="model_not_found")) is Failure.MODEL_NOT_FOUND
    assert classify(err(404, code="upstream_not_found")) is Failure.MISCONFIGURED
    assert falls_back(Failure.MISCONFIGURED)
    assert {classify(err(s)) for s in (408, 500, 502, 503, 504, 529)} == {Failure.TRANSIENT}
    assert classify(err(400)) is Failure.CALLER and not falls_back(Failure.CALLER)


def test_cache_key_normalisation() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    same = {"model": "other", "stream": True, "stream_options": {"include_usage": True}, "user": "u",
            "temperature": 0, "messages": [{"content": [{"type": "text", "text": "hi"}], "role": "user"}]}
    assert normalise(body) == normalise(same)
    assert cache_key("k1", "m", body) == cache_key("k1", "m", same)
    assert cache_key("k1", "m", body) != cache_key("k2", "m", body)  # scoped by key
    assert cache_key("k1", "m", body) != cache_key("k1", "m", {**body, "temperature": 0.5})


def test_cacheable() -> None:
    settings = CacheSettings(ttl_s=60)
    zero = {"temperature": 0}
    assert cacheable(zero, {}, settings) == 60
    assert cacheable({"temperature": 0.7}, {}, settings) is None
    assert cacheable({"temperature": 0.7}, {"cache_control": "max-age=30"}, settings) == 30
    assert cacheable(zero, {"no_cache": "true"}, settings) is None
    assert cacheable(zero, {"cache_control": "no-cache"}, settings) is None
    assert cacheable({**zero, "n": 2}, {}, settings) is None
    assert cacheable(zero, {}, CacheSettings(mode="off")) is None
    assert cacheable({}, {}, CacheSettings(mode="always", ttl_s=9)) == 9


def _streamed_answer() -> list[common_pb2.AnswerEvent]:
    import orjson
    chunk = {"id": "c1", "model": "m", "created": 1,
             "choices": [{"index": 0, "delta": {"content": "Hello there"}, "finish_reason": None}]}
    end = {"id": "c1", "model": "m", "created": 1,
           "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    start = common_pb2.ResponseStart(provider="p", connection="c", model="m")
    return [common_pb2.AnswerEvent(start=start),
            *(common_pb2.AnswerEvent(chunk=common_pb2.Chunk(data=orjson.dumps(c)),
                                     format=common_pb2.OPENAI_CHAT) for c in (chunk, end)),
            common_pb2.AnswerEvent(usage=common_pb2.Usage(input_tokens=2, output_tokens=2))]


def test_events_round_trip_and_a_stream_becomes_a_cache_entry() -> None:
    events = _streamed_answer()
    assert decode_events(encode_events(events)) == events
    collector = Collector()
    for event in events:
        collector.add(event)
    entry = collector.entry()
    assert entry is not None
    as_json = cached_events(entry, stream=False, usage_chunk=False, headers={"x-omniroute-cache": "HIT"})
    assert as_json[0].start.headers["x-omniroute-cache"] == "HIT"
    assert b"Hello there" in as_json[1].response and b'"total_tokens":4' in as_json[1].response
    as_stream = cached_events(entry, stream=True, usage_chunk=False, headers={})
    assert all(e.WhichOneof("kind") in ("start", "chunk") for e in as_stream) and len(as_stream) >= 3
    failed = Collector()
    failed.add(common_pb2.AnswerEvent(error=common_pb2.Error(status=500)))
    assert failed.entry() is None


def test_system_prompt_and_thinking_budget_shaping() -> None:
    settings = RoutingSettings.model_validate({
        "system_prompt": {"enabled": True, "prefix": "Be brief.", "suffix": "Cite sources."},
        "thinking_budget": {"mode": "custom", "budget_tokens": 2048}})
    body = {"messages": [{"role": "system", "content": "You help."}, {"role": "user", "content": "q"}]}
    assert shape(body, settings)
    assert body["messages"][0]["content"] == "Be brief.\n\nYou help.\n\nCite sources."
    assert body["reasoning_effort"] in ("low", "medium", "high")
    bare = {"messages": [{"role": "user", "content": "q"}]}
    assert not shape(bare, RoutingSettings())

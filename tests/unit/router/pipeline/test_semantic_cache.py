"""The semantic cache stage: a request that does not want it passes through untouched; one that
does is served by the semantic cache around the next stages."""

from __future__ import annotations

from typing import Any, cast

from omniroute.config.routing_spec import CacheSettings, RoutingSettings
from omniroute.config.snapshot import ConfigSnapshot
from omniroute_router.caches.semantic import shape_of
from omniroute_router.pipeline.call import Call, Events
from omniroute_router.pipeline.semantic_cache import SemanticCacheStage

from .stages import Answering, kinds, make_call, response, run, start

BODY = {"model": "p/m", "messages": [{"role": "user", "content": "hi"}]}


class FakeSemanticCache:
    def __init__(self) -> None:
        self.served: list[Call] = []

    async def serve(self, settings: CacheSettings, call: Call, produce: Any) -> Events:
        self.served.append(call)
        call.cache_kind = "semantic"
        yield start()


def call_with(semantic_enabled: bool, options: dict[str, str] | None = None) -> Call:
    routing = RoutingSettings.model_validate({"cache": {"semantic_enabled": semantic_enabled}})
    call = make_call(snapshot=ConfigSnapshot(routing=routing), options=options or {})
    call.body = dict(BODY)
    return call


async def test_not_wanted_passes_through() -> None:
    cache = FakeSemanticCache()
    events = await run(SemanticCacheStage(cast(Any, cache)), call_with(False), Answering([start(), response()]))
    assert kinds(events) == ["start", "response"] and cache.served == []


async def test_wanted_is_served_by_the_semantic_cache() -> None:
    cache, next = FakeSemanticCache(), Answering([start(), response()])
    call = call_with(False, {"semantic_cache": "on"})  # the request's own word wins
    events = await run(SemanticCacheStage(cast(Any, cache)), call, next)
    assert kinds(events) == ["start"] and cache.served == [call] and call.cache_kind == "semantic"


def test_answers_of_another_client_format_or_stream_flag_are_another_scope() -> None:
    body = {"model": "p/m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2}
    shapes = {shape_of(body, ""), shape_of(body, "ANTHROPIC:whole"), shape_of(body, "ANTHROPIC:stream"),
              shape_of(body, "GEMINI:whole")}
    assert len(shapes) == 4

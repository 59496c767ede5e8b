"""The idempotency stage: without a key it only passes through; the first request keeps its
events (not usage, not a failure); a repeat replays them, marked, and notes the cache kind."""

from __future__ import annotations

from typing import Any, cast

from omniroute.limits.flight import Outcome
from omniroute_router.caches.replay import decode_events, encode_events
from omniroute_router.pipeline.idempotency import Idempotent

from .stages import Answering, error, kinds, make_call, response, run, start, usage


class FakeIdempotency:
    def __init__(self, value: bytes | None = None) -> None:
        self.value = value
        self.begun: list[str] = []
        self.finished: list[tuple[str, bytes | None, float]] = []

    async def begin(self, scope: str, request_id: str, *, lease_s: float, wait_s: float) -> Outcome:
        self.begun.append(scope)
        return Outcome(owner=self.value is None, value=self.value)

    async def finish(self, scope: str, request_id: str, answer: bytes | None, window_s: float) -> None:
        self.finished.append((scope, answer, window_s))


def stage(fake: FakeIdempotency) -> Idempotent:
    return Idempotent(cast(Any, fake), lease_s=5.0)


async def test_without_an_idempotency_key_nothing_is_kept() -> None:
    fake = FakeIdempotency()
    events = await run(stage(fake), make_call(), Answering([start(), response()]))
    assert kinds(events) == ["start", "response"] and fake.begun == []


async def test_the_first_answer_is_kept_without_its_usage() -> None:
    fake = FakeIdempotency()
    events = await run(stage(fake), make_call(options={"idempotency_key": "abc"}),
                       Answering([start(), response(), usage()]))
    assert kinds(events) == ["start", "response", "usage"]
    [(_, kept, window_s)] = fake.finished
    assert kept is not None and kinds(decode_events(kept)) == ["start", "response"] and window_s > 0


async def test_a_failed_first_answer_keeps_nothing() -> None:
    fake = FakeIdempotency()
    await run(stage(fake), make_call(options={"idempotency_key": "abc"}), Answering([error()]))
    assert [kept for _, kept, _ in fake.finished] == [None]


async def test_a_repeat_replays_the_first_answer() -> None:
    fake = FakeIdempotency(encode_events([start(), response()]))
    call, next = make_call(options={"idempotency_key": "abc"}), Answering([start(provider="other")])
    events = await run(stage(fake), call, next)
    assert kinds(events) == ["start", "response"] and not next.calls
    assert events[0].start.headers["x-omniroute-idempotent"] == "true" and events[0].start.provider == "p"
    assert call.cache_kind == "idempotent"

"""The guard stage: a bug is 500 internal_error (also mid-answer); Redis away before the answer
is 503 state_store_unavailable or, when given, the stateless mode; Redis lost mid-answer ends the
answer with a 503 event."""

from __future__ import annotations

import pytest
import redis

from omniroute_router.pipeline.call import Call, Events
from omniroute_router.pipeline.guard import Guard

from .stages import Answering, kinds, make_call, response, run, start


def raising(exc: Exception, events_before: int = 0) -> Answering:
    class Raising(Answering):
        async def __call__(self, call: Call) -> Events:
            async for event in super().__call__(call):
                yield event
            raise exc
    return Raising([start(), response()][:events_before])


async def test_a_bug_is_an_internal_error_event(caplog: pytest.LogCaptureFixture) -> None:
    events = await run(Guard(None), make_call(), raising(RuntimeError("bug"), events_before=1))
    assert kinds(events) == ["start", "error"]
    assert (events[-1].error.status, events[-1].error.code) == (500, "internal_error")
    assert len([r for r in caplog.records if r.exc_info]) == 1


async def test_redis_away_before_the_answer_fails_closed_without_a_stateless_mode() -> None:
    events = await run(Guard(None), make_call(), raising(redis.ConnectionError("down")))
    [event] = events
    assert (event.error.status, event.error.code, event.error.retryable) == (503, "state_store_unavailable", True)


async def test_redis_away_before_the_answer_goes_to_the_stateless_mode() -> None:
    stateless = Answering([start(), response()])
    events = await run(Guard(stateless), make_call(), raising(redis.ConnectionError("down")))
    assert kinds(events) == ["start", "response"] and len(stateless.calls) == 1


async def test_redis_lost_mid_answer_ends_it_with_a_503_event() -> None:
    stateless = Answering([start()])
    events = await run(Guard(stateless), make_call(), raising(redis.ConnectionError("down"), events_before=2))
    assert kinds(events) == ["start", "response", "error"] and not stateless.calls
    assert (events[-1].error.status, events[-1].error.code) == (503, "state_store_unavailable")

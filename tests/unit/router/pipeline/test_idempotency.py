"""The idempotency stage: without a key it only passes through; the first request keeps its
events (not usage, not a failure); a repeat replays them, marked, and notes the cache kind; the
same key with another request is a 409."""

from __future__ import annotations

from typing import Any, cast

from omniroute.shared_state.flight import Outcome
from omniroute.shared_state.idempotency import KeyReused
from omniroute.v1 import common_pb2, router_pb2
from omniroute_router.caches.replay import decode_events, encode_events
from omniroute_router.pipeline.idempotency import Idempotent, fingerprint

from .stages import Answering, error, kinds, make_call, response, run, start, usage


class FakeIdempotency:
    def __init__(self, value: bytes | None = None, bound_to: str = "") -> None:
        self.value = value
        self.bound_to = bound_to  # the fingerprint the key is bound to ("": none yet)
        self.begun: list[str] = []
        self.finished: list[tuple[str, bytes | None, float]] = []

    async def begin(self, scope: str, fingerprint: str, request_id: str, *, lease_s: float,
                    window_s: float) -> Outcome:
        if self.bound_to and self.bound_to != fingerprint:
            raise KeyReused(scope)
        self.begun.append(scope)
        return Outcome(owner=self.value is None, value=self.value)

    async def finish(self, scope: str, fingerprint: str, request_id: str, answer: bytes | None,
                     window_s: float) -> None:
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


async def test_the_key_of_another_request_is_a_conflict_without_an_answer() -> None:
    fake = FakeIdempotency(encode_events([start(), response()]), bound_to="another request")
    call, next = make_call(options={"idempotency_key": "abc"}), Answering([start()])
    events = await run(stage(fake), call, next)
    assert kinds(events) == ["error"] and not next.calls and fake.finished == []
    assert (events[0].error.status, events[0].error.code) == (409, "idempotency_key_reused")


def test_the_fingerprint_is_the_request_whatever_its_key_order() -> None:
    def request(**fields: object) -> router_pb2.ChatRequest:
        base: dict[str, object] = {"request_id": "r1", "model": "p/m", "client_format": common_pb2.ANTHROPIC,
                                   "body": b'{"a": 1}', "native_body": b'{"x": 1, "y": [1, 2]}'}
        return router_pb2.ChatRequest(**{**base, **fields})  # type: ignore[arg-type]
    same = fingerprint(request())
    assert fingerprint(request(request_id="r2", native_body=b'{"y": [1, 2], "x": 1}')) == same
    others = [request(native_body=b'{"x": 2, "y": [1, 2]}'), request(model="p/other"), request(stream=True),
              request(client_format=common_pb2.GEMINI), request(operation=common_pb2.OPERATION_EMBEDDINGS),
              request(attachment=common_pb2.Attachment(data=b"audio")),
              request(caller_headers={"anthropic-beta": "x"})]
    assert len({fingerprint(r) for r in others} | {same}) == len(others) + 1

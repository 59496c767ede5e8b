"""The record stage: the request's UsageEvent comes from the answer's events and what the
stages noted on the Call; usage events are withheld from the caller; nothing is published for
a subject-less operation; a caller that went away is 499."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from omniroute.config.snapshot import ApiKey, ConfigSnapshot
from omniroute.settings import Settings
from omniroute.v1 import common_pb2, events_pb2
from omniroute_router.dispatch.dispatch import Attempts
from omniroute_router.pipeline.call import Call, Events
from omniroute_router.pipeline.record import Record

from .stages import Answering, error, kinds, make_call, response, run, start, usage


class Published:
    def __init__(self) -> None:
        self.subjects: list[str] = []
        self.events: list[events_pb2.UsageEvent] = []
        self.refusals: list[tuple[events_pb2.AuditEvent, str]] = []

    async def publish_confirmed(self, subject: str, data: bytes, **fields: Any) -> bool:
        self.publish(subject, data, **fields)
        return True

    def publish(self, subject: str, data: bytes, *, msg_id: str = "", **_: Any) -> None:
        if subject.endswith(".audit.refused"):
            self.refusals.append((events_pb2.AuditEvent.FromString(data), msg_id))
            return
        self.subjects.append(subject)
        self.events.append(events_pb2.UsageEvent.FromString(data))


def record_stage(published: Published, subject: str = "chat") -> Record:
    return Record(cast(Any, published), Settings(env="unit"), lambda call: subject)


async def test_an_answer_is_recorded_from_its_events() -> None:
    published = Published()
    events = await run(record_stage(published), make_call(key_id="k1"),
                       Answering([start(combo="team"), response(), usage(3, 4)]))
    assert kinds(events) == ["start", "response"]  # usage is for accounting only
    [subject], [event] = published.subjects, published.events
    assert subject.endswith("usage.chat")
    assert (event.provider, event.connection, event.model, event.combo) == ("p", "c1", "m", "team")
    assert (event.status, event.key_id, event.requested_model) == (200, "k1", "p/m")
    assert (event.usage.input_tokens, event.usage.output_tokens) == (3, 4) and event.ttft_ms > 0
    assert event.operation == common_pb2.OPERATION_CHAT


async def test_the_operation_is_recorded() -> None:
    published = Published()
    await run(record_stage(published, subject="embeddings"),
              make_call(operation=common_pb2.OPERATION_EMBEDDINGS), Answering([start(), response()]))
    assert published.events[0].operation == common_pb2.OPERATION_EMBEDDINGS


async def test_an_error_and_what_the_stages_noted_are_recorded() -> None:
    published = Published()

    async def failing(call: Call) -> Events:
        call.attempts = Attempts(failed=["p/c1:503"], failed_start=start("q", "c2", "n").start)
        yield error(400, "bad_request", "no such thing")

    await run(record_stage(published), make_call(), failing)
    [event] = published.events
    assert (event.status, event.error_class, event.error_message) == (400, "bad_request", "no such thing")
    assert list(event.failed_attempts) == ["p/c1:503"]
    assert (event.provider, event.connection, event.model) == ("q", "c2", "n")


@pytest.mark.parametrize(("kind", "combo"), [("exact", "team"), ("idempotent", "")])
async def test_a_cache_hit_is_recorded_with_its_kind(kind: str, combo: str) -> None:
    published = Published()

    async def replay(call: Call) -> Events:
        call.cache_kind = kind
        yield start(combo="team")
        yield response()

    await run(record_stage(published), make_call(), replay)
    [event] = published.events
    assert (event.cache_hit, event.cache_kind, event.combo) == (True, kind, combo)


async def test_no_subject_no_usage_event() -> None:
    published = Published()
    await run(record_stage(published, subject=""), make_call(), Answering([start(), response()]))
    assert published.events == []


async def test_a_caller_that_went_away_is_499() -> None:
    published = Published()

    async def cancelled(call: Call) -> Events:
        yield start()
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await run(record_stage(published), make_call(), cancelled)
    [event] = published.events
    assert (event.status, event.error_class) == (499, "CancelledError")


@pytest.mark.parametrize(("status", "code"), [(429, "budget_exhausted"), (429, "rate_limit_exceeded"),
                                              (403, "model_blocked"), (403, "provider_not_allowed"),
                                              (403, "model_not_allowed"), (429, "team_budget_exhausted")])
async def test_a_governance_refusal_is_also_an_audit_event(status: int, code: str) -> None:
    published = Published()
    team_key = ApiKey(id="k1", name="ci", enabled=True, allowed_models=None, limits={}, budget=None,
                      expires_at=None, team_id="alpha")
    call = make_call(key_id="k1", snapshot=ConfigSnapshot(keys_by_id={"k1": team_key}))
    await run(record_stage(published, subject="embeddings"), call,
              Answering([error(status, code, "refused for a reason")]))
    [event] = published.events          # the usage row as before
    assert event.error_class == code
    [(refusal, msg_id)] = published.refusals
    assert msg_id == "refused:r1"
    assert (refusal.actor, refusal.team_id, refusal.reason, refusal.status) == ("key:k1", "alpha", code, status)
    assert (refusal.route, refusal.model, refusal.request_id, refusal.service) == ("embeddings", "p/m", "r1", "router")
    assert refusal.message == "refused for a reason"


@pytest.mark.parametrize(("status", "code"), [(429, "rate_limited"), (502, "upstream_error"), (400, "bad_request")])
async def test_other_failures_are_not_audit_events(status: int, code: str) -> None:
    """An upstream's own 429 or a bad request is the caller's or the provider's, not a decision."""
    published = Published()
    await run(record_stage(published), make_call(key_id="k1"), Answering([error(status, code, "no")]))
    assert published.refusals == [] and len(published.events) == 1


@pytest.mark.parametrize(("change", "reason"), [({"revoked_at": datetime(2026, 1, 1, tzinfo=UTC)}, "key_revoked"),
                                                ({"expires_at": datetime(2026, 1, 1, tzinfo=UTC)}, "key_expired"),
                                                ({"enabled": False}, "key_disabled")])
async def test_a_key_the_router_finds_unusable_is_audited_as_the_edge_would(change: dict[str, Any],
                                                                             reason: str) -> None:
    """The router's snapshot may learn of a revocation before the edge's: the same audit row."""
    published = Published()
    key = ApiKey(id="k1", name="ci", enabled=True, allowed_models=None, limits={}, budget=None,
                 expires_at=None, team_id="alpha")
    call = make_call(key_id="k1", snapshot=ConfigSnapshot(keys_by_id={"k1": replace(key, **change)}))
    await run(record_stage(published), call, Answering([error(401, "invalid_api_key", "not valid")]))
    [(refusal, _)] = published.refusals
    assert (refusal.actor, refusal.team_id, refusal.reason, refusal.status) == ("key:k1", "alpha", reason, 401)


async def test_the_keys_team_and_person_are_recorded() -> None:
    published = Published()
    owned = ApiKey(id="k1", name="k", enabled=True, allowed_models=None, limits={}, budget=None,
                   expires_at=None, team_id="ml", person_id="person_1")
    call = make_call(key_id="k1", snapshot=ConfigSnapshot(keys_by_id={"k1": owned}))
    await run(record_stage(published), call, Answering([start(), response(), usage(3, 4)]))
    [event] = published.events
    assert (event.key_id, event.team_id, event.person_id) == ("k1", "ml", "person_1")
    keyless = Published()
    await run(record_stage(keyless), make_call(), Answering([start(), response()]))
    assert (keyless.events[0].team_id, keyless.events[0].person_id) == ("", "")


class StoredLater(Published):
    """JetStream's acknowledgement arrives only when the test says so."""

    def __init__(self) -> None:
        super().__init__()
        self.stored = asyncio.Event()
        self.confirmed: list[str] = []

    async def publish_confirmed(self, subject: str, data: bytes, **fields: Any) -> bool:
        self.publish(subject, data, **fields)
        await self.stored.wait()
        self.confirmed.append(subject)
        return True


async def test_an_answer_ends_only_once_its_usage_event_is_stored() -> None:
    """A router killed right after an answer's end must not lose its usage row: the caller sees
    the end (the stage's generator finishing) only after JetStream stored the event."""
    published = StoredLater()
    seen: list[str] = []

    async def consume() -> None:
        async for event in record_stage(published)(make_call(), Answering([start(), response(), usage(1, 2)])):
            seen.append(event.WhichOneof("kind"))
        seen.append("end")

    consuming = asyncio.create_task(consume())
    for _ in range(20):   # every event is through, the event published, the end held back
        await asyncio.sleep(0)
    assert seen == ["start", "response"] and len(published.events) == 1 and not consuming.done()
    published.stored.set()
    await consuming
    assert seen == ["start", "response", "end"] and len(published.confirmed) == 1


async def test_a_failed_answer_does_not_wait_for_its_event() -> None:
    """Only a completed answer waits for its event; a caller that went away is recorded unwaited."""
    published = StoredLater()

    async def cancelled(call: Call) -> Events:
        yield start()
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await run(record_stage(published), make_call(), cancelled)
    assert len(published.events) == 1 and published.confirmed == []

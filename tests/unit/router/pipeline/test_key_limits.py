"""The key limits stage: a key without limits (and a team without limits) costs no admission; an
admitted request's answer carries the x-ratelimit-* headers of the tighter scope and its tokens
count towards tpm afterwards (chat only), for the key and its team; a refused one is a 429 alone,
naming the scope (key or team) that refused."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, cast

import pytest

from omniroute.config.snapshot import ConfigSnapshot, Team
from omniroute.shared_state.ratelimit import Admission, Limits
from omniroute_router.pipeline.key_limits import KeyLimits

from .stages import KEY, Answering, kinds, make_call, response, run, start, usage

TPM = dataclasses.replace(KEY, limits={"tpm": 1000})
IN_TEAM = dataclasses.replace(KEY, limits={"rpm": 50}, team_id="t1")


def team_snapshot(limits: dict[str, Any]) -> ConfigSnapshot:
    return ConfigSnapshot(teams={"t1": Team(id="t1", name="T", allowed_models=None, limits=limits, budget=None)})


class FakeLimiter:
    """Admits every scope except those named in `refuse`."""

    def __init__(self, allowed: bool = True, refuse: Sequence[str] = ()) -> None:
        self.allowed = allowed
        self.refuse = set(refuse)
        self.admitted: list[list[str]] = []
        self.tokens: list[tuple[str, int]] = []

    async def admit_all(self, scopes: Sequence[tuple[str, Limits]], member: str) -> list[Admission]:
        self.admitted.append([name for name, _ in scopes])
        answers = []
        for name, limits in scopes:
            allowed = self.allowed and name not in self.refuse
            answers.append(Admission(allowed=allowed, retry_after_s=2.0, limits=limits, rpm_used=limits.rpm // 2,
                                     tpm_used=10, concurrency_used=0, reasons=() if allowed else ("rpm",)))
        return answers

    async def add_tokens(self, scope: str, tokens: int) -> None:
        self.tokens.append((scope, tokens))


async def test_a_key_without_limits_is_not_admitted_at_all() -> None:
    limiter, call = FakeLimiter(), make_call()
    call.key = KEY
    await run(KeyLimits(cast(Any, limiter), count_tokens=True), call, Answering([start(), usage()]))
    assert limiter.admitted == [] and limiter.tokens == []


async def test_a_key_and_team_without_limits_are_not_admitted_at_all() -> None:
    limiter, call = FakeLimiter(), make_call(snapshot=team_snapshot({}))
    call.key = dataclasses.replace(KEY, team_id="t1")
    await run(KeyLimits(cast(Any, limiter), count_tokens=True), call, Answering([start(), usage()]))
    assert limiter.admitted == [] and limiter.tokens == []


@pytest.mark.parametrize("count_tokens", [True, False])
async def test_an_admitted_answer_says_its_limits_and_counts_its_tokens(count_tokens: bool) -> None:
    limiter, call = FakeLimiter(), make_call()
    call.key = TPM
    events = await run(KeyLimits(cast(Any, limiter), count_tokens=count_tokens), call,
                       Answering([start(), response(), usage(3, 4)]))
    assert kinds(events) == ["start", "response", "usage"]
    assert limiter.admitted == [["key:k1"]] and call.headers["x-ratelimit-limit-tokens"] == "1000"
    assert limiter.tokens == ([("key:k1", 7)] if count_tokens else [])


async def test_a_refused_request_is_a_429_alone() -> None:
    limiter, call, next = FakeLimiter(allowed=False), make_call(), Answering([start()])
    call.key = TPM
    [event] = await run(KeyLimits(cast(Any, limiter), count_tokens=True), call, next)
    assert (event.error.status, event.error.code) == (429, "rate_limit_exceeded") and not next.calls
    assert event.error.headers["retry-after"] == "2" and event.error.retry_after_s == 2.0
    assert "this API key" in event.error.message


async def test_the_key_and_its_team_are_admitted_together_and_both_count_tokens() -> None:
    limiter, call = FakeLimiter(), make_call(snapshot=team_snapshot({"rpm": 10, "tpm": 500}))
    call.key = IN_TEAM
    await run(KeyLimits(cast(Any, limiter), count_tokens=True), call, Answering([start(), usage(3, 4)]))
    assert limiter.admitted == [["key:k1", "team:t1"]]
    # The team's 10 rpm (5 left) is tighter than the key's 50 (25 left): its numbers are shown.
    assert (call.headers["x-ratelimit-limit-requests"], call.headers["x-ratelimit-remaining-requests"]) == ("10", "5")
    assert call.headers["x-ratelimit-limit-tokens"] == "500"
    assert limiter.tokens == [("team:t1", 7)]  # the key has no tpm of its own


async def test_a_team_refusal_names_the_team() -> None:
    limiter = FakeLimiter(refuse=["team:t1"])
    call, next = make_call(snapshot=team_snapshot({"rpm": 10})), Answering([start()])
    call.key = IN_TEAM
    [event] = await run(KeyLimits(cast(Any, limiter), count_tokens=True), call, next)
    assert (event.error.status, event.error.code) == (429, "rate_limit_exceeded") and not next.calls
    assert event.error.message.startswith("Rate limit reached for the team 't1' of this API key (rpm)")
    assert event.error.headers["x-ratelimit-limit-requests"] == "10"

"""The key limits stage: a key without limits costs no admission; an admitted request's answer
carries the x-ratelimit-* headers and its tokens count towards tpm afterwards (chat only); a
refused one is a 429 alone."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import pytest

from omniroute.shared_state.ratelimit import Admission, Limits
from omniroute_router.pipeline.key_limits import KeyLimits

from .stages import KEY, Answering, kinds, make_call, response, run, start, usage

TPM = dataclasses.replace(KEY, limits={"tpm": 1000})


class FakeLimiter:
    def __init__(self, allowed: bool = True) -> None:
        self.allowed = allowed
        self.admitted: list[str] = []
        self.tokens: list[tuple[str, int]] = []

    async def admit(self, scope: str, limits: Limits, member: str) -> Admission:
        self.admitted.append(scope)
        return Admission(allowed=self.allowed, retry_after_s=2.0, limits=limits, rpm_used=0, tpm_used=10,
                         concurrency_used=0, reasons=() if self.allowed else ("tpm",))

    async def add_tokens(self, scope: str, tokens: int) -> None:
        self.tokens.append((scope, tokens))


async def test_a_key_without_limits_is_not_admitted_at_all() -> None:
    limiter, call = FakeLimiter(), make_call()
    call.key = KEY
    await run(KeyLimits(cast(Any, limiter), count_tokens=True), call, Answering([start(), usage()]))
    assert limiter.admitted == [] and limiter.tokens == []


@pytest.mark.parametrize("count_tokens", [True, False])
async def test_an_admitted_answer_says_its_limits_and_counts_its_tokens(count_tokens: bool) -> None:
    limiter, call = FakeLimiter(), make_call()
    call.key = TPM
    events = await run(KeyLimits(cast(Any, limiter), count_tokens=count_tokens), call,
                       Answering([start(), response(), usage(3, 4)]))
    assert kinds(events) == ["start", "response", "usage"]
    assert limiter.admitted == ["key:k1"] and call.headers["x-ratelimit-limit-tokens"] == "1000"
    assert limiter.tokens == ([("key:k1", 7)] if count_tokens else [])


async def test_a_refused_request_is_a_429_alone() -> None:
    limiter, call, next = FakeLimiter(allowed=False), make_call(), Answering([start()])
    call.key = TPM
    [event] = await run(KeyLimits(cast(Any, limiter), count_tokens=True), call, next)
    assert (event.error.status, event.error.code) == (429, "rate_limit_exceeded") and not next.calls
    assert event.error.headers["retry-after"] == "2" and event.error.retry_after_s == 2.0

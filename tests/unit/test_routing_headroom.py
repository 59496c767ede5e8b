"""Reading a provider's rate-limit headers (pure): which are forwarded, when an account has no
headroom left and for how long."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from omniroute.shared_state.headroom import DEFAULT_WAIT_S, MAX_WAIT_S, exhausted, pick, reset_seconds

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()


def test_only_the_named_headers_are_forwarded() -> None:
    upstream = [("X-RateLimit-Remaining-Requests", "0"), ("content-type", "application/json"),
                ("anthropic-ratelimit-tokens-reset", "2025-01-01T12:00:30Z"), ("Retry-After", "2"),
                ("set-cookie", "secret")]
    assert pick(upstream) == {"x-ratelimit-remaining-requests": "0", "retry-after": "2",
                              "anthropic-ratelimit-tokens-reset": "2025-01-01T12:00:30Z"}


@pytest.mark.parametrize(("value", "seconds"), [
    ("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("17", 17.0),
    ("2025-01-01T12:00:30Z", 30.0), ("2025-01-01T12:00:30+00:00", 30.0), ("2024-12-31T00:00:00Z", 0.0),
    ("soon", None), ("", None), ("2025-01-01T12:00:30", None)])
def test_reset_values(value: str, seconds: float | None) -> None:
    assert reset_seconds(value, NOW) == seconds


def test_exhaustion_takes_the_longest_wait_of_the_empty_counts() -> None:
    assert exhausted({"x-ratelimit-remaining-requests": "5", "x-ratelimit-reset-requests": "1s"}) is None
    found = exhausted({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s",
                       "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1m"}, NOW)
    assert found is not None and found.wait_s == 60.0 and found.reason == "no tokens left at the provider"
    anthropic = exhausted({"anthropic-ratelimit-requests-remaining": "0",
                           "anthropic-ratelimit-requests-reset": "2025-01-01T12:00:10Z"}, NOW)
    assert anthropic is not None and anthropic.wait_s == 10.0


def test_missing_or_absurd_resets_fall_back_to_retry_after_then_defaults() -> None:
    found = exhausted({"x-ratelimit-remaining-requests": "0", "retry-after": "7"})
    assert found is not None and found.wait_s == 7.0
    found = exhausted({"x-ratelimit-remaining-tokens": "0"})
    assert found is not None and found.wait_s == DEFAULT_WAIT_S
    found = exhausted({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "900h"})
    assert found is not None and found.wait_s == MAX_WAIT_S
    assert exhausted({"x-ratelimit-remaining-tokens": "lots"}) is None

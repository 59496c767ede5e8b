"""Upstream misbehaviour: every fault ends in a fallback (a combo with a second target) or in a
clean error in the caller's format within the configured timeout; never a hang, never a 500.

Direct calls (`p-<fault>/<fault>`) run under OMNIROUTE_UPSTREAM_TIMEOUT_S; the fallback combos
(`fb-<fault>`) under their own `timeout_s`. The bound allowed on top of a timeout is the
gateway's own work plus the scheduling slack of two shared CI cores."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.mocks.faults import FAULTS
from tests.reliability.checks import assert_clean_openai_error, chat
from tests.reliability.conftest import API_KEY, COMBO_TIMEOUT_S, MOCK_FAULTS, UPSTREAM_TIMEOUT_S
from tests.support import Gateway

pytestmark = pytest.mark.xdist_group("reliability")

SLACK_S = 2.0
ALL_FAULTS = (*FAULTS, *MOCK_FAULTS)


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url) as http:
        yield http


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("fault", ALL_FAULTS)
def test_fault_falls_back_or_fails_cleanly_within_the_combo_timeout(
        client: httpx.Client, fault: str, stream: bool) -> None:
    outcome = chat(client, API_KEY, f"fb-{fault}", stream=stream)
    # A fault before the answer starts falls back to the good target. One after it started (a
    # stream cut mid-way) cannot be replayed, so it must end in a clean error frame instead.
    if outcome.status == 200 and outcome.stream_error is None:
        assert "Hello from mock" in outcome.text, outcome.body[:300]
    else:
        assert_clean_openai_error(outcome)
    # One failed attempt bounded by the combo timeout, then the fallback's own answer.
    assert outcome.elapsed_s < COMBO_TIMEOUT_S + SLACK_S, outcome.elapsed_s


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("fault", ALL_FAULTS)
def test_fault_without_fallback_is_a_clean_error_within_the_upstream_timeout(
        client: httpx.Client, fault: str, stream: bool) -> None:
    outcome = chat(client, API_KEY, f"p-{fault}/{fault}", stream=stream)
    assert_clean_openai_error(outcome, statuses=(429, 500, 502, 503, 504))
    assert outcome.elapsed_s < UPSTREAM_TIMEOUT_S + SLACK_S, outcome.elapsed_s


def test_a_429_storm_is_absorbed_by_the_fallback(client: httpx.Client) -> None:
    """Twenty 429s in a row: the first cools the connection down (Retry-After), every request
    still gets the fallback's answer, and none waits for the cooldown."""
    outcomes = [chat(client, API_KEY, "fb-mock-429") for _ in range(20)]
    assert [o.status for o in outcomes] == [200] * 20
    assert max(o.elapsed_s for o in outcomes) < 2.0

"""Upstream misbehaviour: a fault before the caller got its first byte falls back to the next
target (a combo with a second one), whole or streamed; a fault after chunks went out ends the
stream with a clean error frame; without a fallback, every fault is a clean error in the
caller's format within the configured timeout; never a hang, never a 500.

Direct calls (`p-<fault>/<fault>`) run under OMNIROUTE_UPSTREAM_TIMEOUT_S; the fallback combos
(`fb-<fault>-<mode>`) under their own `timeout_s`. The bound allowed on top of a timeout is the
gateway's own work plus the scheduling slack of two shared CI cores."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.mocks.faults import FAULTS, FaultServer
from tests.mocks.server import MockServer
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


#: Where each fault happens in a stream, and why. A whole (non-streaming) answer reaches the
#: caller in one piece after the upstream call ended, so every fault there is before the first
#: byte. In a stream, the first byte is the first chunk: until then the answer can still come
#: from the next target, and must.
BEFORE_THE_FIRST_CHUNK = {
    "fault-hang": "no response headers at all",
    "fault-slowhead": "the headers never complete",
    "fault-close": "closed without a byte",
    "fault-reset": "reset without a byte",
    "fault-redirect": "a 307, which is not followed: no answer",
    "fault-badjson": "the first event is not JSON: nothing to relay",
    "fault-slowloris": "a byte at a time, never a complete event",
    "mock-429": "an error status before the body",
    "mock-500": "an error status before the body",
    "mock-503": "an error status before the body",
}
#: Faults after chunks went to the caller: what was sent cannot be taken back, so the stream
#: ends in a clean error frame (and no fallback). The text is what the caller got first.
AFTER_THE_FIRST_CHUNK = {
    "fault-stall": "one two",        # two chunks, then silence until the idle timeout
    "fault-truncated": "one",        # one chunk, then half a frame and the end of the body
    "mock-drop": "Hello from",       # two chunks, then the connection is cut
    "mock-error-mid": "Hello from",  # two chunks, then the provider's error event
}
assert set(BEFORE_THE_FIRST_CHUNK) | set(AFTER_THE_FIRST_CHUNK) == set(ALL_FAULTS)


def _attempts(fault: str, fault_upstream: FaultServer, mock_upstream: MockServer) -> tuple[int, int]:
    """(requests the faulty upstream got for `fault`, requests the good target got)."""
    chats = mock_upstream.requests(family="openai", path="/v1/chat/completions")
    good = sum(1 for r in chats if r.body["model"] == "mock-text")
    if fault.startswith("fault-"):
        return fault_upstream.hits[fault], good
    return sum(1 for r in chats if r.body["model"] == fault), good


def _faults_before_the_first_byte() -> list[tuple[str, bool]]:
    return [(fault, False) for fault in ALL_FAULTS] + [(fault, True) for fault in BEFORE_THE_FIRST_CHUNK]


@pytest.mark.parametrize(("fault", "stream"), [
    pytest.param(fault, stream, id=f"{fault}-{'stream' if stream else 'whole'}")
    for fault, stream in _faults_before_the_first_byte()])
def test_a_fault_before_the_first_byte_falls_back_to_the_good_target(
        client: httpx.Client, gateway: Gateway, fault_upstream: FaultServer, mock_upstream: MockServer,
        fault: str, stream: bool) -> None:
    mode = "stream" if stream else "whole"
    faulty_before, good_before = _attempts(fault, fault_upstream, mock_upstream)
    outcome = chat(client, API_KEY, f"fb-{fault}-{mode}", stream=stream)
    assert outcome.status == 200, outcome.body[:300]
    assert outcome.stream_error is None, outcome.body[-300:]
    assert outcome.text == "Hello from mock openai! This is a scripted reply."
    if stream:
        assert outcome.body.rstrip().endswith(b"data: [DONE]")
    faulty_after, good_after = _attempts(fault, fault_upstream, mock_upstream)
    assert (faulty_after - faulty_before, good_after - good_before) == (1, 1)  # the fault, then the fallback
    row = gateway.usage_row(outcome.headers["x-omniroute-request-id"])
    assert (row["provider"], row["status"]) == ("good", 200)
    [failed] = row["failed_attempts"]
    assert failed.startswith(f"p-{fault}-{mode}/main:"), row["failed_attempts"]
    # One failed attempt bounded by the combo timeout, then the fallback's own answer.
    assert outcome.elapsed_s < COMBO_TIMEOUT_S + SLACK_S, outcome.elapsed_s


@pytest.mark.parametrize("fault", list(AFTER_THE_FIRST_CHUNK))
def test_a_fault_after_the_first_chunk_ends_the_stream_with_a_clean_error_frame(
        client: httpx.Client, fault_upstream: FaultServer, mock_upstream: MockServer, fault: str) -> None:
    faulty_before, good_before = _attempts(fault, fault_upstream, mock_upstream)
    outcome = chat(client, API_KEY, f"fb-{fault}-stream", stream=True)
    assert outcome.status == 200
    assert outcome.text == AFTER_THE_FIRST_CHUNK[fault]  # what was relayed before the fault
    assert_clean_openai_error(outcome)  # an error frame, and no [DONE]
    assert outcome.stream_error is not None
    faulty_after, good_after = _attempts(fault, fault_upstream, mock_upstream)
    assert (faulty_after - faulty_before, good_after - good_before) == (1, 0)  # no replay after bytes went out
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

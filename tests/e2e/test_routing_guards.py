"""What the router refuses or avoids before it calls upstream, across three router replicas:
- a key whose spend budget has no room left for a request's worst case (spend counted by
  accounting from real usage events) is refused with 429 in the caller's format, by every replica;
- a connection whose provider said it has no rate-limit headroom left (x-ratelimit-* /
  anthropic-ratelimit-* headers) is skipped until the provider's reset."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import anthropic
import openai
import pytest

from tests.e2e.routing_stack import RoutingStack, routing_stack
from tests.mocks.server import MockServer

pytestmark = pytest.mark.xdist_group("routing-guards")

BUDGET_KEY = "sk-omni-budget-00000000000000"
FREE_KEY = "sk-omni-free-0000000000000000"
# gpt-4o-mini at the seeded list price ($0.15 / $0.60 per 1M): a 3-word prompt and the mock's
# 9-word answer cost $0.00000585. A request is reserved its worst case (body bytes / 3 prompt
# tokens + max_tokens): with max_tokens 16 about $0.000016, so two fit this limit one after the
# other; after them ($0.0000117 spent) max_tokens 32, or none (4096 reserved), no longer fits.
TINY_LIMIT_USD = 0.00003


@pytest.fixture(scope="module")
def stack(mock_upstream: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoutingStack]:
    base = f"{mock_upstream.url}/v1"
    # The mock answers with the headers a connection sends as x-mock-set-<name> (its configured
    # headers): these accounts' providers report no headroom left after each answer.
    no_requests = {"x-mock-set-x-ratelimit-remaining-requests": "0",
                   "x-mock-set-x-ratelimit-reset-requests": "30s",
                   "x-mock-set-x-ratelimit-remaining-tokens": "90000"}
    # Far enough ahead that a slow (loaded) run still finds the mark in force.
    reset_at = (datetime.now(UTC) + timedelta(seconds=600)).isoformat().replace("+00:00", "Z")
    no_tokens = {"x-mock-set-anthropic-ratelimit-tokens-remaining": "0",
                 "x-mock-set-anthropic-ratelimit-tokens-reset": reset_at}
    config = {
        "providers": [
            {"id": "myopenai", "type": "openai", "base_url": base, "models": ["gpt-4o-mini"],
             "connections": [{"name": "primary", "api_key": "sk-upstream-1"}]},
            {"id": "learned", "type": "openai", "base_url": base, "models": ["mock-text"],
             "connections": [
                 {"name": "a", "api_key": "sk-learn-a", "priority": 0, "settings": {"headers": no_requests}},
                 {"name": "b", "api_key": "sk-learn-b", "priority": 1}]},
            {"id": "claude", "type": "anthropic", "base_url": base, "models": ["mock-text"],
             "connections": [
                 {"name": "x", "api_key": "sk-ant-x", "priority": 0, "settings": {"headers": no_tokens}},
                 {"name": "y", "api_key": "sk-ant-y", "priority": 1}]},
            {"id": "solo", "type": "openai", "base_url": base, "models": ["mock-text"],
             "connections": [{"name": "only", "api_key": "sk-solo", "settings": {"headers": no_requests}}]},
        ],
        "keys": [{"name": "budgeted", "key": BUDGET_KEY,
                  "budget": {"limit": TINY_LIMIT_USD, "period": "daily"}},
                 {"name": "free", "key": FREE_KEY}],
    }
    with routing_stack(tmp_path_factory.mktemp("guards"), config, ["budgeted"]) as running:
        yield running


def _openai(stack: RoutingStack, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.gateway.url}/v1", api_key=key, max_retries=0)


async def test_exhausted_budget_is_refused_in_every_format_by_every_replica(stack: RoutingStack) -> None:
    client = _openai(stack, BUDGET_KEY)
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(
            model="myopenai/gpt-4o-mini", messages=[{"role": "user", "content": "spend some money"}],
            max_tokens=4)  # the hold (body bytes + 4 output tokens) fits twice in the tiny budget
        assert raw.parse().choices[0].message.content
        assert 0 <= float(raw.headers["x-budget-remaining-usd"]) < TINY_LIMIT_USD  # after its hold
        # Accounting counts spend in Redis in the transaction that inserts the row: once the row
        # is there, the router sees the spend.
        row = stack.gateway.usage_row(raw.headers["x-request-id"], timeout=20)
        assert row["cost_usd"] > 0

    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="myopenai/gpt-4o-mini",
                                       messages=[{"role": "user", "content": "one more"}])
    error = refused.value
    assert error.status_code == 429
    assert error.code == "budget_exhausted" and error.type == "insufficient_quota"
    assert "Budget exhausted" in error.message and "daily budget" in error.message
    assert int(error.response.headers["retry-after"]) > 0  # until the day resets
    assert error.response.headers["x-should-retry"] == "false"
    assert error.response.headers["x-budget-limit-usd"] == "0.00003"
    assert 0 < float(error.response.headers["x-budget-remaining-usd"]) < TINY_LIMIT_USD
    assert "remains" in error.message  # the remaining budget in the body too

    claude = anthropic.Anthropic(base_url=stack.gateway.url, api_key=BUDGET_KEY, max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as refused_anthropic:
        claude.messages.create(model="myopenai/gpt-4o-mini", max_tokens=32,
                               messages=[{"role": "user", "content": "and in anthropic"}])
    body = refused_anthropic.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error" and "Budget exhausted" in body["error"]["message"]

    for replica in (1, 2):  # the counters are in Redis: every router refuses
        answer = await stack.chat(replica, "myopenai/gpt-4o-mini", f"replica {uuid.uuid4().hex}")
        assert answer.error is not None and answer.error.code == "budget_exhausted"
        assert answer.error.status == 429 and not answer.error.retryable

    # A key without a budget is not affected.
    free = _openai(stack, FREE_KEY).chat.completions.create(
        model="myopenai/gpt-4o-mini", messages=[{"role": "user", "content": "still free"}])
    assert free.choices[0].message.content


@pytest.mark.parametrize("provider", ["learned", "claude"])
async def test_a_connection_without_headroom_is_skipped_by_every_replica(stack: RoutingStack,
                                                                         provider: str) -> None:
    first = await stack.chat(0, f"{provider}/mock-text", f"headroom {uuid.uuid4().hex}", key="free")
    assert first.error is None and first.start is not None
    assert first.start.connection in ("a", "x")  # the preferred account, while it had headroom
    # The provider's own rate-limit headers are the gateway's business, not the caller's.
    assert not [h for h in first.headers if "ratelimit" in h]
    for replica in (1, 2, 0):  # its answer said "nothing left for 30 s": every router skips it
        answer = await stack.chat(replica, f"{provider}/mock-text", f"headroom {uuid.uuid4().hex}",
                                  key="free")
        assert answer.error is None and answer.start is not None
        assert answer.start.connection in ("b", "y")


async def test_no_headroom_anywhere_is_a_503_with_the_reset_time(stack: RoutingStack) -> None:
    assert (await stack.chat(0, "solo/mock-text", "use the last request", key="free")).error is None
    answer = await stack.chat(1, "solo/mock-text", "nothing left", key="free")
    assert answer.error is not None and answer.error.status == 503
    assert "no requests left at the provider" in answer.error.message
    assert 20 < answer.error.retry_after_s <= 30

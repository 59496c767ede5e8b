"""Team quotas through the running stack: three router replicas, each behind its own edge, and the
official SDKs as clients (openai, anthropic):
- a team budget worth exactly K requests, shared by two keys of the team, 5×K requests fired at
  once (whole, streamed, embeddings mixed) through the three edges and routers, accounting killed
  with -9 in the middle: at most K admitted, the refusals are 429 budget_exhausted naming the
  team, the team's spend stays within its budget and equals the sum of its usage rows (each
  carrying the team and the key's person), and every hold (team and key) became spend;
- a team rpm shared by two keys across two routers: exactly N admitted, the refusals 429
  rate_limit_exceeded naming the team with Retry-After and x-ratelimit-*;
- a key's rpm narrower than its team's applies (and leaves the team's window alone);
- a key's models are its own ∩ its team's: a model the key allows but the team does not is a 403
  in the caller's format (OpenAI and Anthropic) and is not listed by /v1/models.

Prices are set so that every admitted request really costs C (as in test_budget_reservations):
chat at $1000 per million output tokens with max_tokens 4 (the mock answers 4 words, input
free), embeddings at $400 per million input tokens."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest
import redis.asyncio as redis

from omniroute.devstack.stack import _wait_ready, free_port
from omniroute.shared_state import budget
from tests.e2e.routing_stack import RoutingStack, routing_stack
from tests.mocks.server import MockServer
from tests.support import REDIS_URL

pytestmark = pytest.mark.xdist_group("team-quotas")

K = 6
N = 5  # the paced team's rpm
COST = Decimal("0.004")            # 4 output tokens at $1000 / 1M
CHAT = "myopenai/gpt-4o-mini"
TOOL = "myopenai/mock-tool"
EMBED = "myopenai/text-embedding-3-small"
EMBED_INPUT = " ".join(["abc"] * 10)
PERSON = "ana@example.com"
SECRETS = {name: f"sk-omni-{name}-".ljust(30, "0") for name in
           ("free", "probe", "q1", "q2", "p1", "p2", "n1", "n2")}


@pytest.fixture(scope="module")
def stack(mock_upstream: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoutingStack]:
    config = {
        "providers": [{"id": "myopenai", "type": "openai", "base_url": f"{mock_upstream.url}/v1",
                       "models": ["gpt-4o-mini", "text-embedding-3-small", "mock-tool"],
                       "connections": [{"name": "primary", "api_key": "sk-upstream-1"}]}],
        "teams": [
            {"id": "quota", "name": "Quota", "budget": {"limit": float(K * COST), "period": "daily"}},
            {"id": "paced", "name": "Paced", "limits": {"rpm": N}},
            {"id": "narrow", "name": "Narrow", "allowed_models": [CHAT], "limits": {"rpm": 50}},
        ],
        "people": [{"email": PERSON, "name": "Ana", "role": "viewer"}],
        "keys": [
            {"name": "free", "key": SECRETS["free"]},
            {"name": "probe", "key": SECRETS["probe"], "budget": {"limit": 1.0, "period": "daily"}},
            # q1 has a roomy budget of its own too: both are held, the team's is the one that binds.
            {"name": "q1", "key": SECRETS["q1"], "team": "quota", "person": PERSON,
             "budget": {"limit": 1.0, "period": "daily"}},
            {"name": "q2", "key": SECRETS["q2"], "team": "quota"},
            {"name": "p1", "key": SECRETS["p1"], "team": "paced"},
            {"name": "p2", "key": SECRETS["p2"], "team": "paced"},
            {"name": "n1", "key": SECRETS["n1"], "team": "narrow", "limits": {"rpm": 2}},
            {"name": "n2", "key": SECRETS["n2"], "team": "narrow", "allowed_models": [CHAT, TOOL]},
        ],
    }
    with routing_stack(tmp_path_factory.mktemp("team-quotas"), config, ["free"]) as running:
        admin = running.gateway.admin_client()
        prices = [{"providerType": "openai", "model": model, "input": input_, "output": output, "cached": 0}
                  for model, input_, output in (("gpt-4o-mini", 0, 1000), ("text-embedding-3-small", 400, 0))]
        assert admin.put("/api/pricing", json={"prices": prices}).status_code == 200
        admin.close()
        asyncio.run(_until_everyone_prices_anew(running))
        yield running


@pytest.fixture(scope="module")
def edges(stack: RoutingStack) -> Iterator[list[str]]:
    """One edge per router replica: the stack's own (first router) and one more for each other."""
    gateway = stack.gateway
    urls = [gateway.url]
    started = []
    try:
        for index, address in enumerate(stack.router_addrs[1:], start=2):
            port = free_port()
            service = gateway.stack.start_service(f"edge-team{index}", "omniroute_edge",
                                                  env={"OMNIROUTE_PORT": str(port), "ROUTER_ADDR": address})
            started.append(service)
            _wait_ready(f"http://127.0.0.1:{port}/readyz", f"edge-team{index}", 60, service.process)
            urls.append(f"http://127.0.0.1:{port}")
        yield urls
    finally:
        for service in started:
            service.process.terminate()
            service.process.wait(15)


async def _until_everyone_prices_anew(stack: RoutingStack) -> None:
    """Every router holds the new prices (a request worth $2 no longer fits the probe key's $1),
    and accounting books them (a free request's row costs C)."""
    deadline = time.monotonic() + 40
    for replica in range(len(stack.router_addrs)):
        while True:
            answer = await stack.chat(replica, CHAT, "probe", key="probe", max_tokens=2000)
            if answer.error is not None and answer.error.code == "budget_exhausted":
                break
            assert time.monotonic() < deadline, f"router {replica} never loaded the prices"
            await asyncio.sleep(0.5)
    sent = 0
    while True:
        assert (await stack.chat(0, CHAT, f"free probe {sent}", key="free", max_tokens=4)).error is None
        sent += 1
        while not (rows := stack.gateway.rows("SELECT cost_usd FROM usage WHERE key_id = %s ORDER BY "
                                             "started_at DESC", (stack.key_ids["free"],))) or len(rows) < sent:
            assert time.monotonic() < deadline, "accounting never wrote the probe's row"
            await asyncio.sleep(0.3)
        if Decimal(str(rows[0][0])) == COST:
            return
        assert time.monotonic() < deadline, "accounting never loaded the prices"
        await asyncio.sleep(0.5)


def _openai(edge: str, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{edge}/v1", api_key=SECRETS[key], max_retries=0, timeout=30)


async def _call(edge: str, key: str, kind: str, marker: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, error body, headers) of one request; status 200 with an empty body when answered."""
    client = _openai(edge, key)
    try:
        if kind == "embeddings":
            await client.embeddings.create(model=EMBED, input=EMBED_INPUT)
        elif kind == "stream":
            stream = await client.chat.completions.create(
                model=CHAT, messages=[{"role": "user", "content": marker}], max_tokens=4, stream=True)
            text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
            assert text
        else:
            answer = await client.chat.completions.create(
                model=CHAT, messages=[{"role": "user", "content": marker}], max_tokens=4)
            assert answer.choices[0].message.content
    except openai.APIStatusError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        return exc.status_code, body, dict(exc.response.headers)
    finally:
        await client.close()
    return 200, {}, {}


def _team_rows(stack: RoutingStack, team: str) -> tuple[int, Decimal]:
    [(count, total)] = stack.gateway.rows(
        "SELECT count(*), coalesce(sum(cost_usd), 0) FROM usage WHERE team_id = %s", (team,))
    return int(count), Decimal(str(total))


async def _wait_team_rows(stack: RoutingStack, team: str, expected: int, within_s: float = 60) -> Decimal:
    deadline = time.monotonic() + within_s
    while (got := _team_rows(stack, team))[0] < expected:
        assert time.monotonic() < deadline, f"{got[0]} of {expected} usage rows of team {team}"
        await asyncio.sleep(0.5)
    return got[1]


def _counter(stack: RoutingStack, owner: str) -> str:
    start, _ = budget.period_bounds("daily", datetime.now(UTC))
    return budget.spend_key(stack.gateway.settings.env, owner, "daily", start)


async def test_a_team_budget_worth_k_requests_admits_at_most_k_of_five_k_from_two_keys_on_three_routers(
        stack: RoutingStack, edges: list[str]) -> None:
    kinds = ("whole", "stream", "embeddings")
    fired = asyncio.gather(*(
        _call(edges[i % 3], ("q1", "q2")[i % 2], kinds[i % 3], f"team budget {i}") for i in range(5 * K)))
    await asyncio.sleep(0.2)
    accounting = stack.gateway.stack.service("accounting")
    accounting.process.send_signal(signal.SIGKILL)  # in the middle: settled holds wait for it
    outcomes = await fired
    accounting.process.wait()
    stack.gateway.stack._relaunch(accounting)
    refused = [(body, headers) for status, body, headers in outcomes if status != 200]
    admitted = len(outcomes) - len(refused)
    assert 1 <= admitted <= K
    assert all(status in (200, 429) for status, _, _ in outcomes), [o[:2] for o in outcomes if o[0] not in (200, 429)]
    for body, headers in refused:
        assert body["code"] == "budget_exhausted" and body["type"] == "insufficient_quota"
        assert body["message"].startswith("Budget exhausted: Team 'quota' has spent")
        assert headers["x-budget-scope"] == "team" and headers["x-budget-limit-usd"] == str(K * COST).rstrip("0")
        assert headers["x-should-retry"] == "false" and int(headers["retry-after"]) > 0

    total = await _wait_team_rows(stack, "quota", 5 * K)  # refusals are rows too, at $0
    assert total == admitted * COST <= K * COST
    q1 = stack.key_ids["q1"]
    [(person_id,)] = stack.gateway.rows("SELECT id FROM people WHERE email = %s", (PERSON,))
    persons = dict(stack.gateway.rows("SELECT key_id, min(person_id) FROM usage WHERE team_id = 'quota' "
                                      "GROUP BY key_id"))
    assert persons == {q1: person_id, stack.key_ids["q2"]: ""}
    client = redis.from_url(REDIS_URL)
    try:
        team = budget.team_owner("quota")
        assert int(await client.get(_counter(stack, team)) or 0) == int(total * budget.NANOS_PER_USD)
        [(q1_total,)] = stack.gateway.rows("SELECT coalesce(sum(cost_usd), 0) FROM usage WHERE key_id = %s", (q1,))
        assert int(await client.get(_counter(stack, q1)) or 0) == int(Decimal(str(q1_total)) * budget.NANOS_PER_USD)
        for owner in (team, q1):  # every hold became spend (or was released)
            holds = budget.holds_key(stack.gateway.settings.env, owner)
            assert int(await client.hget(holds, budget.TOTAL_FIELD) or 0) == 0
    finally:
        await client.aclose()

    admin = stack.gateway.admin_client()
    try:
        answer = admin.get("/api/usage/budget", params={"teamId": "quota"}).json()
    finally:
        admin.close()
    assert answer["teamId"] == "quota" and Decimal(str(answer["spent"])) == total
    assert answer["held"] == 0 and answer["resetsAt"] == answer["periodEnd"]


async def test_a_team_rpm_is_shared_by_two_keys_across_two_routers(stack: RoutingStack, edges: list[str]) -> None:
    outcomes = await asyncio.gather(*(
        _call(edges[i % 2], ("p1", "p2")[i % 2], "whole", f"paced {i}") for i in range(3 * N)))
    assert sum(status == 200 for status, _, _ in outcomes) == N, [o[:2] for o in outcomes if o[0] != 200][:3]
    refused = [(body, headers) for status, body, headers in outcomes if status != 200]
    assert len(refused) == 2 * N
    for body, headers in refused:
        assert body["code"] == "rate_limit_exceeded"
        assert body["message"].startswith("Rate limit reached for the team 'paced' of this API key (rpm)")
        assert int(headers["retry-after"]) >= 1 and headers["x-ratelimit-limit-requests"] == str(N)
        assert headers["x-ratelimit-remaining-requests"] == "0"


async def test_a_key_rpm_narrower_than_its_teams_applies(stack: RoutingStack, edges: list[str]) -> None:
    outcomes = [await _call(edges[i % 3], "n1", "whole", f"narrow {i}") for i in range(5)]
    assert [status for status, _, _ in outcomes] == [200, 200, 429, 429, 429]
    assert all(body["message"].startswith("Rate limit reached for this API key (rpm)")
               for _, body, _ in outcomes[2:])
    # The key's refusals counted nothing in the team's window.
    client = redis.from_url(REDIS_URL)
    try:
        assert await client.zcard(f"{stack.gateway.settings.env}:rl:team:narrow:rpm") == 2
    finally:
        await client.aclose()


async def test_a_key_may_use_only_the_models_its_team_allows_too(stack: RoutingStack, edges: list[str]) -> None:
    client = _openai(edges[1], "n2")
    try:
        answer = await client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "ok"}],
                                                      max_tokens=4)
        assert answer.choices[0].message.content
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await client.chat.completions.create(model=TOOL, messages=[{"role": "user", "content": "no"}])
        assert isinstance(refused.value.body, dict)
        assert refused.value.body["code"] == "model_not_allowed"
        assert refused.value.body["message"] == (f"The team 'narrow' of this API key may not use the model "
                                                 f"'{TOOL}'.")
        listed = {model.id async for model in client.models.list()}
        assert CHAT in listed and TOOL not in listed
    finally:
        await client.close()
    claude = anthropic.AsyncAnthropic(base_url=edges[2], api_key=SECRETS["n2"], max_retries=0, timeout=30)
    try:
        with pytest.raises(anthropic.PermissionDeniedError) as denied:
            await claude.messages.create(model=TOOL, max_tokens=4, messages=[{"role": "user", "content": "no"}])
        assert denied.value.status_code == 403
        assert denied.value.body == {"type": "error", "error": {
            "type": "permission_error",
            "message": f"The team 'narrow' of this API key may not use the model '{TOOL}'."}}
    finally:
        await claude.close()

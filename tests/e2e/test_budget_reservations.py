"""Budgets that hold exactly, through the running stack with three router replicas:
- a budget worth exactly K requests, 5×K requests fired at once (whole, streamed, embeddings)
  across the replicas, accounting killed with -9 in the middle: at most K admitted, the final
  spend within the budget and equal to the sum of the key's usage rows;
- a router killed with -9 while it holds reservations: they expire, the budget is whole again,
  nothing counted twice;
- a spent budget refuses embeddings, images and transcriptions as it refuses chat.

Prices are set so that every admitted request really costs C: chat at $1000 per million output
tokens with max_tokens 4 (the mock answers 4 words, input free), embeddings of 10 words at $400
per million input tokens. A budget of K × C then admits at most K, whatever the order."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import grpc
import orjson
import pytest
import redis.asyncio as redis

from omniroute.devstack.backing import wait_listening
from omniroute.devstack.stack import Stack, free_port
from omniroute.shared_state import budget
from omniroute.v1 import common_pb2, router_pb2, router_pb2_grpc
from tests.e2e.routing_stack import Answer, RoutingStack, routing_stack
from tests.mocks.server import MockServer
from tests.support import REDIS_URL

pytestmark = pytest.mark.xdist_group("budget-reservations")

K = 6
COST = Decimal("0.004")            # 4 output tokens at $1000 / 1M
CHAT = "myopenai/gpt-4o-mini"
SLOW = "myopenai/mock-slow-30000"  # answers after 30 s: holds its reservation meanwhile
EMBED = "myopenai/text-embedding-3-small"
EMBED_INPUT = " ".join(["abc"] * 10)  # 10 tokens for the mock: $0.004 at $400 / 1M
PROBE_LIMIT_USD = 1.0


@pytest.fixture(scope="module")
def stack(mock_upstream: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoutingStack]:
    config = {
        "providers": [{"id": "myopenai", "type": "openai", "base_url": f"{mock_upstream.url}/v1",
                       "models": ["gpt-4o-mini", "text-embedding-3-small", "mock-slow-30000",
                                  "dall-e-3", "whisper-1"],
                       "connections": [{"name": "primary", "api_key": "sk-upstream-1"}]}],
        "keys": [{"name": "exact", "key": "sk-omni-exact-000000000000000",
                  "budget": {"limit": float(K * COST), "period": "daily"}},
                 {"name": "held", "key": "sk-omni-held-0000000000000000",
                  "budget": {"limit": float(3 * COST), "period": "daily"}},
                 {"name": "media", "key": "sk-omni-media-000000000000000",
                  "budget": {"limit": float(COST), "period": "weekly"}},
                 {"name": "probe", "key": "sk-omni-probe-000000000000000",
                  "budget": {"limit": PROBE_LIMIT_USD, "period": "daily"}},
                 {"name": "free", "key": "sk-omni-free-0000000000000000"}],
    }
    with routing_stack(tmp_path_factory.mktemp("budget"), config, ["exact"]) as running:
        admin = running.gateway.admin_client()
        prices = [{"providerType": "openai", "model": model, "input": input_, "output": output, "cached": 0}
                  for model, input_, output in (("gpt-4o-mini", 0, 1000), ("mock-slow-30000", 0, 1000),
                                                ("text-embedding-3-small", 400, 0))]
        assert admin.put("/api/pricing", json={"prices": prices}).status_code == 200
        admin.close()
        asyncio.run(_until_everyone_prices_anew(running))
        yield running


async def _until_everyone_prices_anew(stack: RoutingStack) -> None:
    """Every router holds the new prices (a request worth $2 at them no longer fits the probe
    key's $1), and accounting books them (a free request's row costs C)."""
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
        answer = await stack.chat(0, CHAT, f"free probe {sent}", key="free", max_tokens=4)
        assert answer.error is None
        sent += 1
        await _wait_rows(stack, "free", sent)
        [(cost,)] = stack.gateway.rows("SELECT cost_usd FROM usage WHERE key_id = %s ORDER BY started_at "
                                       "DESC LIMIT 1", (stack.key_ids["free"],))
        if Decimal(str(cost)) == COST:
            return
        assert time.monotonic() < deadline, "accounting never loaded the prices"
        await asyncio.sleep(0.5)


async def _embed(stack: RoutingStack, replica: int, key: str) -> Answer:
    return await _operation(stack, replica, key, common_pb2.OPERATION_EMBEDDINGS,
                            {"model": EMBED, "input": EMBED_INPUT})


async def _operation(stack: RoutingStack, replica: int, key: str, operation: common_pb2.Operation,
                     body: dict[str, str], attachment: common_pb2.Attachment | None = None) -> Answer:
    request = router_pb2.ChatRequest(request_id=uuid.uuid4().hex, key_id=stack.key_ids[key],
                                     client_format=common_pb2.OPENAI_CHAT, body=orjson.dumps(body),
                                     model=body["model"], operation=operation, attachment=attachment)
    answer = Answer()
    async with grpc.aio.insecure_channel(stack.router_addrs[replica % len(stack.router_addrs)]) as channel:
        whole = await router_pb2_grpc.RouterStub(channel).ChatWhole(request, timeout=30)
    for event in whole.events:
        kind = event.WhichOneof("kind")
        if kind == "start":
            answer.start = event.start
        elif kind == "response":
            answer.response = orjson.loads(event.response)
        elif kind == "error":
            answer.error = event.error
    return answer


def _spend_key(stack: RoutingStack, key: str) -> str:
    start, _ = budget.period_bounds("daily", datetime.now(UTC))
    return budget.spend_key(stack.gateway.settings.env, stack.key_ids[key], "daily", start)


async def _held(client: redis.Redis, stack: RoutingStack, key: str) -> int:
    holds = budget.holds_key(stack.gateway.settings.env, stack.key_ids[key])
    return int(await client.hget(holds, budget.TOTAL_FIELD) or 0)


def _rows(stack: RoutingStack, key: str) -> tuple[int, Decimal]:
    [(count, total)] = stack.gateway.rows(
        "SELECT count(*), coalesce(sum(cost_usd), 0) FROM usage WHERE key_id = %s", (stack.key_ids[key],))
    return int(count), Decimal(str(total))


async def _wait_rows(stack: RoutingStack, key: str, expected: int, within_s: float = 60) -> Decimal:
    deadline = time.monotonic() + within_s
    while (got := _rows(stack, key))[0] < expected:
        assert time.monotonic() < deadline, f"{got[0]} of {expected} usage rows"
        await asyncio.sleep(0.5)
    return got[1]


def _admitted(answers: list[Answer]) -> int:
    refused = [a for a in answers if a.error is not None]
    assert all(a.error.code == "budget_exhausted" and a.error.status == 429 for a in refused
               if a.error is not None), [a.error for a in refused]
    return len(answers) - len(refused)


async def test_k_requests_worth_of_budget_admits_at_most_k_of_five_k_fired_at_once(stack: RoutingStack) -> None:
    requests = []
    for i in range(5 * K):
        replica = i % len(stack.router_addrs)
        if i % 3 == 0:
            requests.append(stack.chat(replica, CHAT, f"whole {i}", key="exact", max_tokens=4))
        elif i % 3 == 1:
            requests.append(stack.chat(replica, CHAT, f"streamed {i}", key="exact", max_tokens=4, stream=True))
        else:
            requests.append(_embed(stack, replica, "exact"))
    fired = asyncio.gather(*requests)
    await asyncio.sleep(0.2)
    accounting = stack.gateway.stack.service("accounting")
    accounting.process.send_signal(signal.SIGKILL)  # in the middle: settled holds wait for it
    answers = await fired
    admitted = _admitted(answers)
    assert 1 <= admitted <= K
    accounting.process.wait()
    stack.gateway.stack._relaunch(accounting)

    total = await _wait_rows(stack, "exact", 5 * K)  # refusals are rows too, at $0
    assert total == admitted * COST <= K * COST
    client = redis.from_url(REDIS_URL)
    try:
        spent = int(await client.get(_spend_key(stack, "exact")) or 0)
        assert spent == int(total * budget.NANOS_PER_USD)
        assert await _held(client, stack, "exact") == 0  # every hold became spend
    finally:
        await client.aclose()


async def test_a_killed_routers_reservations_expire_and_the_budget_is_whole_again(stack: RoutingStack) -> None:
    gateway = stack.gateway
    doomed = Stack(ports=gateway.stack.ports, env=gateway.stack.env, log_dir=gateway.log_dir)
    doomed.ports.router = port = free_port()
    service = doomed.start_service("router-doomed", "omniroute_router", env={"OMNIROUTE_BUDGET_HOLD_S": "3"})
    client = redis.from_url(REDIS_URL)
    try:
        wait_listening("127.0.0.1", port, "router-doomed", 60, service.process)
        doomed_stack = RoutingStack(gateway=gateway, router_addrs=[f"127.0.0.1:{port}"], key_ids=stack.key_ids)
        in_flight = [asyncio.ensure_future(doomed_stack.chat(0, SLOW, f"slow {i}", key="held", max_tokens=4))
                     for i in range(3)]
        deadline = time.monotonic() + 20
        while await _held(client, stack, "held") < int(3 * COST * budget.NANOS_PER_USD):
            assert time.monotonic() < deadline, "the slow requests never held their cost"
            await asyncio.sleep(0.1)
        refused = await stack.chat(0, CHAT, "no room", key="held", max_tokens=4)
        assert refused.error is not None and refused.error.code == "budget_exhausted"

        service.process.send_signal(signal.SIGKILL)
        service.process.wait()
        for task in in_flight:
            with pytest.raises(grpc.aio.AioRpcError):
                await task
        await asyncio.sleep(3.5)  # past the dead router's holds' deadline

        answers = [await stack.chat(replica, CHAT, f"after {replica}", key="held", max_tokens=4)
                   for replica in range(3)]
        assert _admitted(answers) == 3  # the whole budget again
        last = await stack.chat(1, CHAT, "one too many", key="held", max_tokens=4)
        assert last.error is not None and last.error.code == "budget_exhausted"

        total = await _wait_rows(stack, "held", 5)  # the dead router's requests left no row
        assert total == 3 * COST
        assert int(await client.get(_spend_key(stack, "held")) or 0) == int(total * budget.NANOS_PER_USD)
        assert await _held(client, stack, "held") == 0
    finally:
        await client.aclose()
        doomed.stop()


async def test_a_spent_budget_refuses_every_priced_operation(stack: RoutingStack) -> None:
    spent = await stack.chat(0, CHAT, "spend it all", key="media", max_tokens=4)  # costs the limit
    assert spent.error is None
    await _wait_rows(stack, "media", 1)
    audio = common_pb2.Attachment(data=b"RIFF0000WAVEfmt ", filename="a.wav", content_type="audio/wav")
    answers = [
        await stack.chat(1, CHAT, "more", key="media", max_tokens=1),
        await stack.chat(2, CHAT, "more", key="media", max_tokens=1, stream=True),
        await _embed(stack, 0, "media"),
        await _operation(stack, 1, "media", common_pb2.OPERATION_IMAGES,
                         {"model": "myopenai/dall-e-3", "prompt": "a cat"}),
        await _operation(stack, 2, "media", common_pb2.OPERATION_TRANSCRIPTION,
                         {"model": "myopenai/whisper-1"}, audio),
    ]
    assert _admitted(answers) == 0
    assert all(a.error is not None and "weekly budget" in a.error.message
               and a.error.headers["x-budget-remaining-usd"] == "0" for a in answers)

"""The budget stage without Redis: no call for a key without a budget nor for a free operation,
the worst case it reserves, the refusal's shape (and the stage answers with it alone), the hold
settled to the real cost or released, fail open (or closed when configured) when Redis fails."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal
from typing import Any, cast

import redis.asyncio as redis

from omniroute.config.routing_spec import ComboSpec
from omniroute.config.snapshot import ApiKey, ConfigSnapshot, Team
from omniroute.settings import Settings
from omniroute.shared_state.budget_holds import HeldBudget, Reservation
from omniroute.store.pricing import DefaultPrice, Price, PriceBook
from omniroute.v1 import common_pb2
from omniroute_router.pipeline.budget import BudgetGate
from omniroute_router.pipeline.budget_cost import audio_seconds, worst_case_nanos
from omniroute_router.selection.resolve import ComboNode, Target

from .stages import Answering, error, make_call, provider, response, run, usage
from .stages import start as start_event

SETTINGS = Settings(env="unit")
# $1 per million input tokens, $2 per million output tokens.
BOOK = PriceBook([Price("openai", "m", Decimal(1), Decimal(2)), Price("openai", "big", Decimal(10), Decimal(20))])
SNAPSHOT = ConfigSnapshot(providers={"p": provider()}, prices=BOOK)
NO_DEFAULT = DefaultPrice()


class FakeHolds:
    """BudgetHolds' methods, noted; `admit` says how reservations end (per budget owner when a
    dict), `spent`/`held` what each budget reports."""

    def __init__(self, admit: bool | dict[str, bool] = True, spent: int = 0, held: int = 0,
                 fail: bool = False) -> None:
        self.admit, self.spent, self.held, self.fail = admit, spent, held, fail
        self.calls: list[tuple[Any, ...]] = []

    async def reserve_all(self, request_id: str, budgets: list[HeldBudget], nanos: int,
                          hold_s: int) -> list[Reservation]:
        for held in budgets:
            self.calls.append(("reserve", request_id, held.limit_nanos, nanos, hold_s, held.owner))
        if self.fail:
            raise redis.ConnectionError("down")
        return [Reservation(self.admit.get(held.owner, True) if isinstance(self.admit, dict) else self.admit,
                            self.spent, self.held) for held in budgets]

    async def settle_all(self, owners: list[str], request_id: str, nanos: int, hold_s: int) -> int:
        self.calls.append(("settle", request_id, nanos, hold_s, *owners))
        return len(owners)

    async def release_all(self, owners: list[str], request_id: str) -> int:
        self.calls.append(("release", request_id, *owners))
        return len(owners)

    async def extend_all(self, owners: list[str], request_id: str, hold_s: int) -> int:
        self.calls.append(("extend", request_id, hold_s, *owners))
        return len(owners)


def _key(budget: dict[str, Any] | None) -> ApiKey:
    return ApiKey(id="key_1", name="k", enabled=True, allowed_models=None, limits={}, budget=budget,
                  expires_at=None)


def _gate(holds: FakeHolds, settings: Settings = SETTINGS) -> BudgetGate:
    gate = BudgetGate(cast(Any, None), settings)
    gate._holds = cast(Any, holds)
    return gate


def _call(budget: dict[str, Any] | None = None, **request: Any) -> Any:
    call = make_call(snapshot=SNAPSHOT, **{"body": b'{"max_tokens": 1000}', **request})
    call.key = _key(budget if budget is not None else {"limit": 1.0, "period": "monthly"})
    call.node = Target(SNAPSHOT.providers["p"], "m")
    return call


async def test_no_budget_and_free_operations_mean_no_redis_call() -> None:
    holds = FakeHolds()
    call = _call()
    call.key = _key(None)
    assert len(await run(_gate(holds), call, Answering([start_event(), response()]))) == 2
    count = _call(operation=common_pb2.OPERATION_COUNT_TOKENS)
    assert len(await run(_gate(holds), count, Answering([response()]))) == 1
    assert holds.calls == []


def test_the_worst_case_is_the_prompt_plus_max_tokens_at_the_dearest_target() -> None:
    call = _call(body=b'{"max_tokens": 1000, "messages": [{"content": "hello world"}]}')
    prompt_tokens = len(call.request.body)  # a token is at least one byte: the hard bound
    assert worst_case_nanos(call, 4096, NO_DEFAULT) == prompt_tokens * 1_000 + 1000 * 2_000
    call.node = ComboNode(ComboSpec(name="c", models=["p/m", "p/big"]),
                          (Target(SNAPSHOT.providers["p"], "m"), Target(SNAPSHOT.providers["p"], "big")))
    assert worst_case_nanos(call, 4096, NO_DEFAULT) == (prompt_tokens * 1_000 + 1000 * 2_000) * 10
    unbounded = _call(body=b'{"n": 2}')
    assert worst_case_nanos(unbounded, 4096, NO_DEFAULT) == 8 * 1_000 + 2 * 4096 * 2_000
    embeddings = _call(body=b'{"input": "abc"}', operation=common_pb2.OPERATION_EMBEDDINGS)
    assert worst_case_nanos(embeddings, 4096, NO_DEFAULT) == 16 * 1_000  # no output tokens
    linked = _call(body=b'{"max_tokens": 1, "messages": [{"content": [{"type": "image_url", '
                        b'"image_url": {"url": "https://x/a.png"}}]}]}')
    # A linked image's tokens are not in its bytes: each counts as the most a provider bills.
    assert worst_case_nanos(linked, 4096, NO_DEFAULT) == (len(linked.request.body) + 2 * 4_000) * 1_000 + 2_000


def test_images_reserve_n_images_at_their_size_and_quality() -> None:
    book = PriceBook([Price("openai", "img", Decimal(0), Decimal(0), per_image={
        "*": Decimal("0.04"), "1024x1024/hd": Decimal("0.08"), "1792x1024/hd": Decimal("0.12")})])
    snapshot = dataclasses.replace(SNAPSHOT, prices=book)
    call = make_call(snapshot=snapshot, operation=common_pb2.OPERATION_IMAGES,
                     body=b'{"prompt": "x", "n": 3, "size": "1792x1024", "quality": "hd"}')
    call.node = Target(SNAPSHOT.providers["p"], "img")
    assert worst_case_nanos(call, 4096, NO_DEFAULT) == 3 * 120_000_000
    default_size = make_call(snapshot=snapshot, operation=common_pb2.OPERATION_IMAGES, body=b'{"prompt": "x"}')
    default_size.node = call.node
    assert worst_case_nanos(default_size, 4096, NO_DEFAULT) == 40_000_000


def test_transcription_reserves_the_uploads_audio_seconds() -> None:
    wav = b"RIFF" + b"\0" * 4 + b"WAVEfmt " + b"\0" * 12 + (32_000).to_bytes(4, "little") + b"\0" * 12
    assert audio_seconds(wav + b"\0" * 64_000) == 2.0  # 16 kHz 16-bit mono: 32 000 bytes a second
    assert audio_seconds(b"\xff" * 20_000) == 10.0  # not WAV: 16 kbit/s, more seconds than real
    book = PriceBook([Price("openai", "whisper", Decimal(0), Decimal(0), per_audio_second=Decimal("0.0001"))])
    call = make_call(snapshot=dataclasses.replace(SNAPSHOT, prices=book), body=b'{"model": "whisper"}',
                     operation=common_pb2.OPERATION_TRANSCRIPTION,
                     attachment=common_pb2.Attachment(data=b"\xff" * 20_000))
    call.node = Target(SNAPSHOT.providers["p"], "whisper")
    assert worst_case_nanos(call, 4096, NO_DEFAULT) == 1_000_000  # 10 s x $0.0001


def test_a_model_without_a_price_reserves_at_the_default_price() -> None:
    call = _call(body=b'{"max_tokens": 1000}')
    call.node = Target(SNAPSHOT.providers["p"], "unpriced-model")
    assert worst_case_nanos(call, 4096, NO_DEFAULT) == 0
    default = DefaultPrice(input_per_mtok=Decimal(3), output_per_mtok=Decimal(15))
    assert worst_case_nanos(call, 4096, default) == len(call.request.body) * 3_000 + 1000 * 15_000


async def test_a_request_that_does_not_fit_is_a_429_with_the_remaining_budget() -> None:
    holds = FakeHolds(admit=False, spent=2_000_000_000)  # $2 of $1
    next = Answering([start_event(), response()])
    [event] = await run(_gate(holds), _call(), next)
    error_ = event.error
    assert (error_.status, error_.type, error_.code, error_.retryable) == (
        429, "insufficient_quota", "budget_exhausted", False)
    assert "Budget exhausted" in error_.message and "$2.00 of its $1.00 monthly" in error_.message
    assert int(error_.headers["retry-after"]) > 0 and error_.retry_after_s > 0
    assert error_.headers["x-budget-remaining-usd"] == "0" and error_.headers["x-budget-limit-usd"] == "1"
    assert error_.headers["x-should-retry"] == "false" and not next.calls

    holds = FakeHolds(admit=False, spent=300_000_000, held=400_000_000)  # $0.30 left
    [event] = await run(_gate(holds), _call(), next)
    assert event.error.headers["x-budget-remaining-usd"] == "0.3"
    assert "$0.4 is held by requests in flight; $0.3 remains" in event.error.message


async def test_the_hold_is_settled_to_the_real_cost_or_released() -> None:
    holds = FakeHolds(spent=100_000_000)
    gate = _gate(holds)
    answered = Answering([start_event(), response(), usage(input_tokens=100, output_tokens=50)])
    call = _call()
    assert len(await run(gate, call, answered)) == 3
    # $1 - $0.10 spent - the worst case held ($0.002 for 1000 output tokens + the prompt)
    prompt = Decimal(len(call.request.body)) / 1_000_000
    assert Decimal(call.headers["x-budget-remaining-usd"]) == Decimal("0.898") - prompt
    assert call.headers["x-budget-reset"].endswith("+00:00")
    reserve, settle = holds.calls
    assert reserve[0] == "reserve" and reserve[2] == 1_000_000_000 and reserve[4] == 660
    assert settle == ("settle", "r1", 100 * 1_000 + 50 * 2_000, SETTINGS.budget_settled_hold_s, "key_1")

    holds.calls.clear()
    await run(gate, _call(), Answering([error()]))
    assert holds.calls[-1] == ("release", "r1", "key_1")

    holds.calls.clear()
    cached = _call()
    cached.cache_kind = "exact"  # a cache's answer costs nothing
    await run(gate, cached, answered)
    assert holds.calls[-1] == ("release", "r1", "key_1")


async def test_redis_failure_fails_open_unless_configured_closed() -> None:
    next = Answering([start_event(), response()])
    assert len(await run(_gate(FakeHolds(fail=True)), _call(), next)) == 2
    closed = dataclasses.replace(SETTINGS, budget_fail_open=False)
    [event] = await run(_gate(FakeHolds(fail=True), closed), _call(), next)
    assert event.error.status == 503 and event.error.code == "budget_unavailable"


def _team_call(key_budget: dict[str, Any] | None, team_budget: dict[str, Any] | None) -> Any:
    snapshot = dataclasses.replace(SNAPSHOT, teams={"ml": Team(id="ml", name="ML", allowed_models=None,
                                                               limits={}, budget=team_budget)})
    call = make_call(snapshot=snapshot, body=b'{"max_tokens": 1000}')
    call.key = dataclasses.replace(_key(key_budget), team_id="ml")
    call.node = Target(SNAPSHOT.providers["p"], "m")
    return call


async def test_the_key_and_its_team_are_held_together_and_settled_together() -> None:
    holds = FakeHolds(spent=100_000_000)
    call = _team_call({"limit": 1.0}, {"limit": 5.0, "period": "daily"})
    await run(_gate(holds), call, Answering([start_event(), response(), usage(input_tokens=100, output_tokens=50)]))
    key_hold, team_hold, settle = holds.calls
    assert (key_hold[2], key_hold[5]) == (1_000_000_000, "key_1")
    assert (team_hold[2], team_hold[5]) == (5_000_000_000, "team:ml")
    assert settle[-2:] == ("key_1", "team:ml")
    # The key's $1 leaves less than the team's $5: its remaining amount is the one shown.
    assert Decimal(call.headers["x-budget-remaining-usd"]) < Decimal("0.9")


async def test_a_team_budget_alone_is_held_for_every_key_of_the_team() -> None:
    holds = FakeHolds()
    await run(_gate(holds), _team_call(None, {"limit": 5.0}), Answering([start_event(), error()]))
    assert [call[-1] for call in holds.calls] == ["team:ml", "team:ml"] and holds.calls[-1][0] == "release"


async def test_a_team_that_has_no_room_refuses_naming_the_team_and_its_remaining_budget() -> None:
    holds = FakeHolds(admit={"team:ml": False}, spent=4_900_000_000)  # $4.90 of the team's $5
    next = Answering([start_event(), response()])
    [event] = await run(_gate(holds), _team_call({"limit": 10.0}, {"limit": 5.0}), next)
    assert (event.error.status, event.error.code) == (429, "budget_exhausted") and not next.calls
    assert event.error.message.startswith("Budget exhausted: Team 'ml' has spent $4.90 of its $5.00 monthly")
    assert event.error.headers["x-budget-scope"] == "team"
    assert event.error.headers["x-budget-remaining-usd"] == "0.1"
    assert event.error.headers["x-budget-limit-usd"] == "5"
    key_refused = FakeHolds(admit={"key_1": False}, spent=4_900_000_000)
    [event] = await run(_gate(key_refused), _team_call({"limit": 5.0}, {"limit": 10.0}), next)
    assert event.error.message.startswith("Budget exhausted: API key key_1 has spent")
    assert event.error.headers["x-budget-scope"] == "key"


async def test_a_long_streams_holds_are_renewed_while_it_runs() -> None:
    holds = FakeHolds()
    gate = _gate(holds)
    gate._refresh_s = 0.05

    class SlowStream(Answering):
        async def __call__(self, call: Any) -> Any:
            for event in self.events:
                await asyncio.sleep(0.06)  # longer than the renewal interval
                yield event

    call = _call()
    answered = SlowStream([start_event(), response(), usage(input_tokens=1, output_tokens=1)])
    assert len(await run(gate, call, answered)) == 3
    kinds = [c[0] for c in holds.calls]
    assert kinds[0] == "reserve" and kinds[-1] == "settle"
    assert kinds.count("extend") == 3 and all(c[2] == gate._hold_s for c in holds.calls if c[0] == "extend")

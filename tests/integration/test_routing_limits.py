"""The Redis scripts behind routing, against a real Redis: exact sliding-window admission under
concurrency, concurrency leases, breaker transitions, cooldown levels, single flight."""

from __future__ import annotations

import asyncio

import pytest

from omniroute import shared_state
from omniroute.config.routing_spec import CooldownSettings, ResilienceProfile
from omniroute.settings import Settings
from omniroute.shared_state.breaker import CLOSED, DEGRADED, HALF_OPEN, OPEN, Breakers
from omniroute.shared_state.cooldown import Cooldowns
from omniroute.shared_state.flight import Flights
from omniroute.shared_state.headroom import Exhausted, Headroom
from omniroute.shared_state.ratelimit import Limits, RateLimiter


@pytest.fixture
async def client(settings: Settings):  # type: ignore[no-untyped-def]
    redis = shared_state.connect(settings)
    yield redis
    keys = [k async for k in redis.scan_iter(match=settings.env + ":*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def test_rpm_admits_exactly_the_limit_under_concurrency(client, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    limiter = RateLimiter(client, settings.env)
    results = await asyncio.gather(*(limiter.admit("key:k", Limits(rpm=25), f"r{i}") for i in range(60)))
    assert sum(r.allowed for r in results) == 25
    refused = next(r for r in results if not r.allowed)
    assert refused.reasons == ("rpm",) and 0 < refused.retry_after_s <= 60
    assert refused.headers()["retry-after"] and refused.headers()["x-ratelimit-remaining-requests"] == "0"


async def test_tpm_and_concurrency_leases(client, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    limiter = RateLimiter(client, settings.env, lease_s=0.3)
    assert (await limiter.admit("key:t", Limits(tpm=100), "a")).allowed
    await limiter.add_tokens("key:t", 150)
    assert (await limiter.admit("key:t", Limits(tpm=100), "b")).reasons == ("tpm",)
    assert (await limiter.admit("key:c", Limits(concurrency=1), "x")).allowed
    assert not (await limiter.admit("key:c", Limits(concurrency=1), "y")).allowed
    await asyncio.sleep(0.35)  # the holder died without releasing: its lease expires
    assert (await limiter.admit("key:c", Limits(concurrency=1), "y")).allowed
    async with limiter.held("key:c", "y"):
        await asyncio.sleep(0.4)  # renewed while held
        assert not (await limiter.admit("key:c", Limits(concurrency=1), "z")).allowed
    assert (await limiter.admit("key:c", Limits(concurrency=1), "z")).allowed  # released


async def test_breaker_states_and_a_single_half_open_probe(client, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    breakers = Breakers(client, settings.env)
    profile = ResilienceProfile(failure_threshold=3, degraded_threshold=2, reset_timeout_s=0.2)
    assert await breakers.record("c1", False, profile) == CLOSED
    assert await breakers.record("c1", False, profile) == DEGRADED
    assert await breakers.record("c1", False, profile) == OPEN
    assert not (await breakers.try_pass("c1", 5)).usable
    await asyncio.sleep(0.25)
    probes = await asyncio.gather(*(breakers.try_pass("c1", 5) for _ in range(5)))
    passed = [p for p in probes if p.usable]
    assert len(passed) == 1 and passed[0].state == HALF_OPEN
    assert await breakers.record("c1", True, profile) == CLOSED
    assert (await breakers.view(["c1"]))["c1"].state == CLOSED


async def test_cooldown_levels_grow_and_decay(client, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    cooldowns = Cooldowns(client, settings.env)
    rules = CooldownSettings(base_s=1, max_s=4)
    durations = [(await cooldowns.fail("c", rules, reason="x", model="m")).remaining_s for _ in range(4)]
    assert durations == [1, 2, 4, 4]
    assert (await cooldowns.fail("c", rules, reason="429", at_least_s=9, model="m")).remaining_s == 9
    view = (await cooldowns.view(["c"], "m"))["c"]
    assert view.active and view.level == 5 and view.reason == "429"
    assert not (await cooldowns.view(["c"], "other"))["c"].active  # per model
    await cooldowns.succeed("c", "m")
    assert (await cooldowns.view(["c"], "m"))["c"].level == 4
    await cooldowns.lock_model("c", "gone", 10)
    assert await cooldowns.locked_models(["c", "d"], "gone") == {"c"}


async def test_single_flight(client, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    flights = Flights(client, settings.env + ":f:")
    first = await flights.begin("k", "a", lease_s=5, wait_s=5)
    assert first.owner
    waiter = asyncio.create_task(flights.begin("k", "b", lease_s=5, wait_s=5))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await flights.finish("k", "a", b"answer", 5)
    assert (await waiter).value == b"answer"
    failed = await flights.begin("k2", "a", lease_s=5, wait_s=5)
    waiter = asyncio.create_task(flights.begin("k2", "b", lease_s=5, wait_s=5))
    await flights.finish("k2", "a", None, 5)  # failed: the waiter takes over
    assert (await waiter).owner and failed.owner


async def test_headroom_marks_extend_never_shorten_and_expire(client, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    headroom = Headroom(client, settings.env)
    await headroom.mark("c1", "m", Exhausted(0.3, "no requests left at the provider"))
    await headroom.mark("c1", "m", Exhausted(0.05, "no tokens left at the provider"))  # shorter: ignored
    view = await headroom.view(["c1", "c2"], "m")
    assert list(view) == ["c1"] and 0.2 < view["c1"].remaining_s <= 0.3
    assert view["c1"].reason == "no requests left at the provider"
    assert await headroom.view(["c1"], "other-model") == {}  # per model, as the providers limit
    await asyncio.sleep(0.35)
    assert await headroom.view(["c1"], "m") == {}


async def test_account_selection_reads_state_in_one_round_trip_and_survives_a_script_flush(
        client, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """The selection's view says which writes a request can skip (a spotless connection needs no
    healing after a success, a closed breaker no probe claim), and still works after Redis lost
    its scripts (the pipeline sends bare EVALSHA, then loads the scripts once and reads again)."""
    from omniroute.config.snapshot import Connection, Provider
    from omniroute_router.selection.accounts import Accounts
    from omniroute_router.selection.resolve import Target

    breakers, cooldowns = Breakers(client, settings.env), Cooldowns(client, settings.env)
    accounts = Accounts(client, settings.env, breakers, cooldowns)
    connections = tuple(Connection(f"p:{name}", "p", name, "k", priority=0, enabled=True, settings={})
                        for name in ("a", "b"))
    target = Target(Provider("p", "openai", "openai", "https://example.com/v1", ("m",), True, {}, connections),
                    "m")
    await client.script_flush()
    first = await accounts.available(target, None)
    assert [c.name for c in first.usable] == ["a", "b"] and first.shared
    assert all(h.spotless and not h.needs_claim for h in first.health.values())

    profile = ResilienceProfile(failure_threshold=1, degraded_threshold=1, reset_timeout_s=0.1)
    await breakers.record("p:a", False, profile)  # opens a
    await cooldowns.fail("p:b", CooldownSettings(base_s=0.05, max_s=1), reason="x", model="m")
    await asyncio.sleep(0.15)  # a is due for its probe, b's cooldown is over but its level stays
    later = await accounts.available(target, None)
    assert later.health["p:a"].needs_claim and not later.health["p:a"].spotless
    assert not later.health["p:b"].needs_claim and not later.health["p:b"].spotless
    assert later.health["p:b"].cooldown_level == 1

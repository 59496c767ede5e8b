"""Observable gauges whose values come from a network read (JetStream, Redis, Postgres).

OpenTelemetry calls an observable gauge's callback synchronously at collection time (a scrape
of /metrics, an OTLP push), where awaiting NATS or Redis is impossible. So a background task
polls every few seconds and keeps the latest values; the callback only reads them. A failed
poll drops the values: an absent series says "unknown", a stale one would lie.

The pollers here:
- `consumer_lag`: messages a durable JetStream consumer has not finished (num_pending +
  num_ack_pending), polled by each consumer service for its own durable.
- `breaker_states`: the state of every circuit breaker in Redis, polled by analytics.
- `budget_levels`: each API key's budget limit, current-period spend and what remains of it,
  polled by accounting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import redis.asyncio as redis
from nats.js import JetStreamContext
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from psycopg_pool import AsyncConnectionPool

from omniroute.settings import Settings
from omniroute.shared_state import breaker
from omniroute.shared_state.budget import (
    TOTAL_FIELD,
    Budget,
    from_nanos,
    holds_key,
    period_bounds,
    spend_key,
    team_owner,
)
from omniroute.store import budget_repo, teams_repo

log = logging.getLogger("omniroute.telemetry")

Labels = tuple[tuple[str, str], ...]  # hashable label set
Values = dict[Labels, float]

BREAKER_STATE_VALUES = {breaker.CLOSED: 0, breaker.DEGRADED: 1, breaker.HALF_OPEN: 2, breaker.OPEN: 3}


def labels(**attributes: str) -> Labels:
    return tuple(sorted(attributes.items()))


class PolledGauges:
    """Several observable gauges filled by one poll function (one round trip feeds them all).

    `poll` returns {gauge name: {labels: value}}; the gauges are created up front with
    `meter.create_observable_gauge` so that they exist even before the first poll."""

    def __init__(self, meter: metrics.Meter, gauges: Mapping[str, tuple[str, str]],
                 poll: Callable[[], Awaitable[dict[str, Values]]], interval_s: float = 5.0) -> None:
        self._poll = poll
        self._interval_s = interval_s
        self.values: dict[str, Values] = {name: {} for name in gauges}
        for name, (unit, description) in gauges.items():
            meter.create_observable_gauge(name, callbacks=[self._callback(name)], unit=unit,
                                          description=description)

    def _callback(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(value, dict(attrs)) for attrs, value in self.values[name].items()]
        return observe

    async def poll_once(self) -> None:
        try:
            polled = await self._poll()
        except Exception as exc:  # NATS / Redis / Postgres away: report nothing rather than stale
            log.debug("gauge poll failed: %s", exc)
            polled = {}
        self.values = {name: polled.get(name, {}) for name in self.values}

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` (run it next to the service's other tasks)."""
        while not stop.is_set():
            await self.poll_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval_s)


# --- queue lag ---------------------------------------------------------------------------------

def consumer_lag(meter: metrics.Meter, js: JetStreamContext, settings: Settings, durable: str,
                 interval_s: float = 5.0) -> PolledGauges:
    """`omniroute.consumer.lag{consumer}`: messages not yet done by the durable consumer
    (not yet delivered + delivered but not acked). Every replica of a consumer service reports
    the same durable, so dashboards take max() by consumer, not sum()."""

    async def poll() -> dict[str, Values]:
        info = await js.consumer_info(settings.stream_name, durable)
        lag = (info.num_pending or 0) + (info.num_ack_pending or 0)
        return {"omniroute.consumer.lag": {labels(consumer=durable): float(lag)},
                "omniroute.consumer.redelivered": {
                    labels(consumer=durable): float(info.num_redelivered or 0)}}

    return PolledGauges(meter, {
        "omniroute.consumer.lag": ("{message}", "Messages the consumer has not acked yet "
                                                "(num_pending + num_ack_pending)"),
        "omniroute.consumer.redelivered": ("{message}", "Messages delivered more than once and "
                                                        "not yet acked")},
        poll, interval_s)


# --- circuit breakers --------------------------------------------------------------------------

async def breaker_values(client: redis.Redis, env: str, remembered: set[str],
                         limit: int = 10_000) -> dict[str, Values]:
    """The state of every breaker key in Redis. A breaker that closes is deleted from Redis
    (omniroute.shared_state.breaker), so connections seen before and now absent report CLOSED (0)
    instead of vanishing: a dashboard then shows the recovery, not a gap."""
    breakers = breaker.Breakers(client, env)
    prefix = breakers.key("")
    ids = [(name.decode() if isinstance(name, bytes) else str(name)).removeprefix(prefix)
           async for name in client.scan_iter(match=prefix + "*", count=500)]
    states = await breakers.view(ids)
    if len(remembered) < limit:
        remembered.update(list(states)[: limit - len(remembered)])
    state_values: Values = {}
    failure_values: Values = {}
    for connection in remembered:
        state = states.get(connection)
        state_values[labels(connection=connection)] = float(
            BREAKER_STATE_VALUES.get(state.state, 0) if state else 0)
        failure_values[labels(connection=connection)] = float(state.failures if state else 0)
    return {"omniroute.breaker.state": state_values, "omniroute.breaker.failures": failure_values}


def breaker_states(meter: metrics.Meter, client: redis.Redis, env: str,
                   interval_s: float = 5.0) -> PolledGauges:
    """`omniroute.breaker.state{connection}` (0 closed, 1 degraded, 2 half-open, 3 open) and
    `omniroute.breaker.failures{connection}` (consecutive failures)."""
    remembered: set[str] = set()
    return PolledGauges(meter, {
        "omniroute.breaker.state": ("", "Circuit breaker per connection: 0 closed, 1 degraded, "
                                        "2 half-open, 3 open"),
        "omniroute.breaker.failures": ("{failure}", "Consecutive failures per connection")},
        lambda: breaker_values(client, env, remembered), interval_s)


# --- budgets -----------------------------------------------------------------------------------

async def budget_values(pool: AsyncConnectionPool, client: redis.Redis, env: str,
                        now: datetime | None = None) -> dict[str, Values]:
    """Every key (and team) with a budget: its limit, its spend in the current period (the Redis counter
    the router checks) and what remains for new requests: limit - spend - the holds of requests
    in flight (omniroute.shared_state.budget_holds), never below 0 (what admission compares against)."""
    now = now or datetime.now(UTC)
    async with pool.connection() as conn:
        rows: list[dict[str, Any]] = await budget_repo.list_budgets(conn)
    parsed = [(row, budget) for row in rows if (budget := Budget.parse(row["budget"])) is not None]
    names = [spend_key(env, row["keyId"], budget.period, period_bounds(budget.period, now)[0])
             for row, budget in parsed]
    spent = await client.mget(names) if names else []
    async with client.pipeline(transaction=False) as pipe:
        for row, _ in parsed:
            pipe.hget(holds_key(env, row["keyId"]), TOTAL_FIELD)
        held = await pipe.execute() if parsed else []
    limits: Values = {}
    spends: Values = {}
    remaining: Values = {}
    for (row, budget), raw, raw_held in zip(parsed, spent, held, strict=True):
        attrs = labels(key=row["keyId"], key_name=str(row["name"] or ""), period=budget.period)
        limits[attrs] = float(budget.limit_usd)
        spends[attrs] = float(from_nanos(int(raw or 0)))
        left = budget.limit_usd - from_nanos(int(raw or 0) + int(raw_held or 0))
        remaining[attrs] = float(max(left, Decimal(0)))
    # Team budgets (issue 19): the same three gauges, a series per team (labels team, team_name,
    # period; no key label), from the team's counter and holds (owner team_owner(id)).
    async with pool.connection() as conn:
        teams = [(team, budget) for team in await teams_repo.list_teams(conn)
                 if (budget := Budget.parse(team["budget"])) is not None]
    for team, budget in teams:
        owner = team_owner(team["id"])
        raw = await client.get(spend_key(env, owner, budget.period, period_bounds(budget.period, now)[0]))
        raw_held = await client.hget(holds_key(env, owner), TOTAL_FIELD)
        attrs = labels(team=team["id"], team_name=str(team["name"] or ""), period=budget.period)
        limits[attrs] = float(budget.limit_usd)
        spends[attrs] = float(from_nanos(int(raw or 0)))
        left = budget.limit_usd - from_nanos(int(raw or 0) + int(raw_held or 0))
        remaining[attrs] = float(max(left, Decimal(0)))
    return {"omniroute.budget.limit.usd": limits, "omniroute.budget.spend.usd": spends,
            "omniroute.budget.remaining.usd": remaining}


def budget_levels(meter: metrics.Meter, pool: AsyncConnectionPool, client: redis.Redis, env: str,
                  interval_s: float = 15.0) -> PolledGauges:
    return PolledGauges(meter, {
        "omniroute.budget.limit.usd": ("", "Budget limit per API key, in USD"),
        "omniroute.budget.spend.usd": ("", "Spend of the API key in its current budget period, "
                                           "in USD"),
        "omniroute.budget.remaining.usd": ("", "What the API key may still spend in its current "
                                               "period (limit - spend - holds), in USD")},
        lambda: budget_values(pool, client, env), interval_s)

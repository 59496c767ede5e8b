"""The budget stage: a key's spend budget held exactly. Before dispatch the request's worst-case
cost is reserved against the key's budget (omniroute.shared_state.budget_holds: one Lua script, atomic
across replicas); when the answer ends the hold is settled to the real cost (accounting then
turns it into spend) or released when the request cost nothing. A request that does not fit is
refused with 429 in the caller's format, not retryable and without fallback: no other account or
model would make the key's spend smaller. Chat and every other operation pass through it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

import redis.asyncio as redis

from omniroute.config.snapshot import ApiKey
from omniroute.settings import Settings
from omniroute.shared_state.budget import Budget, from_nanos, period_bounds, spend_key
from omniroute.shared_state.budget_holds import BudgetHolds, Reservation
from omniroute.store.pricing import default_price, to_nanos
from omniroute.v1 import common_pb2
from omniroute_router.errors import RoutingError
from omniroute_router.pipeline.budget_cost import answer_nanos, worst_case_nanos
from omniroute_router.pipeline.call import Call, Events, Next, error_event
from omniroute_router.selection.capability import usage_subject

log = logging.getLogger("omniroute.router")
_HOLD_MARGIN_S = 60  # a live request's hold outlasts its upstream timeout by this much


class BudgetGate:
    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._holds = BudgetHolds(client, settings.env)
        self._settings = settings
        self._hold_s = settings.budget_hold_s or int(settings.upstream_timeout_s) + _HOLD_MARGIN_S
        self._default_price = default_price(settings)

    async def __call__(self, call: Call, next: Next) -> Events:
        budget = Budget.parse(call.key.budget) if call.key else None
        # No budget (the common case) or a free operation (token counts): no Redis call.
        if call.key is None or budget is None or not usage_subject(call.request.operation):
            async for event in next(call):
                yield event
            return
        key_id = call.key.id
        try:
            held = await self.reserve(call, call.key, budget)
        except RoutingError as exc:
            yield error_event(exc.to_proto())
            return
        start: common_pb2.ResponseStart | None = None
        usage: common_pb2.Usage | None = None
        try:
            async for event in next(call):
                kind = event.WhichOneof("kind")
                if kind == "start":
                    start = event.start
                elif kind == "usage":
                    usage = event.usage
                yield event
        finally:
            if held:
                # Before the record stage publishes the usage event, so accounting's ingest (which
                # drops the hold as it adds the spend) comes after this.
                await self._settle(call, key_id, start, usage)

    async def reserve(self, call: Call, key: ApiKey, budget: Budget,
                      now: datetime | None = None) -> bool:
        """Hold the request's worst case; True when held (False: Redis away, failing open).
        Raises RoutingError when it does not fit (429) or cannot be checked and fails closed."""
        period_start, period_end = period_bounds(budget.period, now or datetime.now(UTC))
        counter = spend_key(self._settings.env, key.id, budget.period, period_start)
        limit = to_nanos(budget.limit_usd)
        worst = worst_case_nanos(call, self._settings.budget_default_max_tokens, self._default_price)
        try:
            reservation = await self._holds.reserve(key.id, call.request.request_id, counter, limit,
                                                    worst, self._hold_s)
        except (redis.RedisError, OSError) as exc:
            # Fail open by default: refusing every budgeted request while Redis is away would turn
            # a store blip into an outage; spend is still recorded by accounting.
            # OMNIROUTE_BUDGET_FAIL_OPEN=false makes the stricter choice (503, retryable later).
            if self._settings.budget_fail_open:
                log.warning("budget reservation skipped for key %s (Redis: %s); letting the request "
                            "through", key.id, exc)
                return False
            raise RoutingError(503, "The budget of this API key cannot be checked right now; retry "
                                    "shortly.", code="budget_unavailable", type_="server_error",
                               retry_after_s=1.0) from exc
        if reservation.admitted:
            # Like x-ratelimit-remaining: what is left once this request's worst case is held.
            left = from_nanos(max(reservation.remaining_nanos(limit) - worst, 0))
            call.headers.update({"x-budget-remaining-usd": _usd(left), "x-budget-reset": period_end.isoformat()})
            return True
        raise _refusal(key.id, budget, reservation, worst, period_end, now)

    async def _settle(self, call: Call, key_id: str, start: common_pb2.ResponseStart | None,
                      usage: common_pb2.Usage | None) -> None:
        request_id = call.request.request_id
        # A cache's answer costs nothing (accounting prices it at 0), like a failed request.
        cost = 0 if call.cache_kind else answer_nanos(call.snapshot, start, usage, self._default_price)
        try:
            if cost > 0:
                await self._holds.settle(key_id, request_id, cost, self._settings.budget_settled_hold_s)
            else:
                await self._holds.release(key_id, request_id)
        except (redis.RedisError, OSError) as exc:  # the hold expires by itself
            log.warning("budget hold of request %s not settled (Redis: %s); it expires", request_id, exc)


def _refusal(key_id: str, budget: Budget, reservation: Reservation, worst_nanos: int,
             period_end: datetime, now: datetime | None) -> RoutingError:
    limit_nanos = to_nanos(budget.limit_usd)
    remaining = from_nanos(reservation.remaining_nanos(limit_nanos))
    spent, held = from_nanos(reservation.spent_nanos), from_nanos(reservation.held_nanos)
    retry_after = max(0, int((period_end - (now or datetime.now(UTC))).total_seconds()) + 1)
    in_flight = f" ${_usd(held)} is held by requests in flight;" if held else ""
    message = (f"Budget exhausted: API key {key_id} has spent ${spent:.2f} of its ${budget.limit_usd:.2f} "
               f"{budget.period} budget;{in_flight} ${_usd(remaining)} remains and this request may "
               f"cost up to ${_usd(from_nanos(worst_nanos))}. It resets at {period_end:%Y-%m-%d %H:%M %Z}.")
    return RoutingError(429, message, code="budget_exhausted", type_="insufficient_quota", headers={
        "retry-after": str(retry_after),
        # x-should-retry: the openai and anthropic SDKs retry a 429 on their own unless told not
        # to; retrying cannot help until the period resets (or requests in flight end).
        "x-should-retry": "false",
        "x-budget-limit-usd": _usd(budget.limit_usd), "x-budget-remaining-usd": _usd(remaining),
        "x-budget-reset": period_end.isoformat()}, retry_after_s=float(retry_after))


def _usd(amount: Decimal) -> str:
    """Nano-dollar exact, without trailing zeros ("0.5", "12")."""
    text = f"{amount:.9f}".rstrip("0").rstrip(".")
    return text or "0"

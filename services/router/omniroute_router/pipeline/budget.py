"""The budget stage: a key's spend budget and its team's, held exactly. Before dispatch the
request's worst-case cost is reserved against both budgets at once
(omniroute.shared_state.budget_holds: one Lua script, atomic across replicas, all or nothing);
when the answer ends the holds are settled to the real cost (accounting then turns them into spend
for the key and the team) or released when the request cost nothing. A request that does not fit
is refused with 429 in the caller's format, saying which budget (the key's or the team's) has no
room and what remains of it, not retryable and without fallback: no other account or model would
make the spend smaller. Chat and every other operation pass through it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import redis.asyncio as redis

from omniroute.config.snapshot import ApiKey, ConfigSnapshot
from omniroute.settings import Settings
from omniroute.shared_state.budget import Budget, from_nanos, period_bounds, spend_key, team_owner
from omniroute.shared_state.budget_holds import BudgetHolds, HeldBudget, Reservation
from omniroute.store.pricing import default_price, to_nanos
from omniroute.v1 import common_pb2
from omniroute_router.errors import RoutingError
from omniroute_router.pipeline.budget_cost import answer_nanos, worst_case_nanos
from omniroute_router.pipeline.call import Call, Events, Next, error_event
from omniroute_router.selection.capability import usage_subject

log = logging.getLogger("omniroute.router")
_HOLD_MARGIN_S = 60  # a live request's hold outlasts its upstream timeout by this much


@dataclass(frozen=True, slots=True)
class Applicable:
    """One budget a request is held against: its owner in Redis and how a refusal names it."""

    owner: str      # the key id, or team_owner(team id)
    scope: str      # "key" or "team" (the x-budget-scope header of a refusal)
    whose: str      # "API key key_1", "Team 'ml'"
    budget: Budget


def budgets_of(snapshot: ConfigSnapshot, key: ApiKey | None) -> list[Applicable]:
    """The key's budget and its team's, those that are set (the key's first)."""
    if key is None:
        return []
    found: list[Applicable] = []
    own = Budget.parse(key.budget)
    if own is not None:
        found.append(Applicable(key.id, "key", f"API key {key.id}", own))
    team = snapshot.teams.get(key.team_id)
    team_budget = Budget.parse(team.budget) if team is not None else None
    if team is not None and team_budget is not None:
        found.append(Applicable(team_owner(team.id), "team", f"Team {team.id!r}", team_budget))
    return found


class BudgetGate:
    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._holds = BudgetHolds(client, settings.env)
        self._settings = settings
        self._hold_s = settings.budget_hold_s or int(settings.upstream_timeout_s) + _HOLD_MARGIN_S
        self._default_price = default_price(settings)
        # A stream's holds are renewed at its events at least this often. Between two events at
        # most the upstream read timeout passes, so with a hold of timeout + margin and a renewal
        # every margin / 2, a live stream's hold never lapses.
        self._refresh_s = min(self._hold_s / 2, _HOLD_MARGIN_S / 2)

    async def __call__(self, call: Call, next: Next) -> Events:
        budgets = budgets_of(call.snapshot, call.key)
        # No budget (the common case) or a free operation (token counts): no Redis call.
        if not budgets or not usage_subject(call.request.operation):
            async for event in next(call):
                yield event
            return
        try:
            held = await self.reserve(call, budgets)
        except RoutingError as exc:
            yield error_event(exc.to_proto())
            return
        start: common_pb2.ResponseStart | None = None
        usage: common_pb2.Usage | None = None
        owners = [b.owner for b in budgets]
        refresh_at = time.monotonic() + self._refresh_s
        try:
            async for event in next(call):
                kind = event.WhichOneof("kind")
                if kind == "start":
                    start = event.start
                elif kind == "usage":
                    usage = event.usage
                if held and time.monotonic() >= refresh_at:
                    await self._extend(call, owners)
                    refresh_at = time.monotonic() + self._refresh_s
                yield event
        finally:
            if held:
                # Before the record stage publishes the usage event, so accounting's ingest (which
                # drops the holds as it adds the spend) comes after this.
                await self._settle(call, owners, start, usage)

    async def reserve(self, call: Call, budgets: list[Applicable], now: datetime | None = None) -> bool:
        """Hold the request's worst case against every budget; True when held (False: Redis
        away, failing open). Raises RoutingError when it does not fit (429) or cannot be checked
        and fails closed."""
        moment = now or datetime.now(UTC)
        bounds = [period_bounds(b.budget.period, moment) for b in budgets]
        held = [HeldBudget(b.owner, spend_key(self._settings.env, b.owner, b.budget.period, start),
                           to_nanos(b.budget.limit_usd)) for b, (start, _) in zip(budgets, bounds, strict=True)]
        worst = worst_case_nanos(call, self._settings.budget_default_max_tokens, self._default_price)
        try:
            reservations = await self._holds.reserve_all(call.request.request_id, held, worst, self._hold_s)
        except (redis.RedisError, OSError) as exc:
            # Fail open by default: refusing every budgeted request while Redis is away would turn
            # a store blip into an outage; spend is still recorded by accounting.
            # OMNIROUTE_BUDGET_FAIL_OPEN=false makes the stricter choice (503, retryable later).
            if self._settings.budget_fail_open:
                log.warning("budget reservation skipped for %s (Redis: %s); letting the request "
                            "through", budgets[0].whose, exc)
                return False
            raise RoutingError(503, "The budget of this API key cannot be checked right now; retry "
                                    "shortly.", code="budget_unavailable", type_="server_error",
                               retry_after_s=1.0) from exc
        for applicable, reservation, (_, period_end) in zip(budgets, reservations, bounds, strict=True):
            if not reservation.admitted:
                raise _refusal(applicable, reservation, worst, period_end, moment)
        # Like x-ratelimit-remaining: what is left once this request's worst case is held, in the
        # budget with the least left (and when that one resets).
        left, reset = min(((from_nanos(max(r.remaining_nanos(h.limit_nanos) - worst, 0)), end)
                           for r, h, (_, end) in zip(reservations, held, bounds, strict=True)),
                          key=lambda pair: pair[0])
        call.headers.update({"x-budget-remaining-usd": _usd(left), "x-budget-reset": reset.isoformat()})
        return True

    async def _extend(self, call: Call, owners: list[str]) -> None:
        try:
            await self._holds.extend_all(owners, call.request.request_id, self._hold_s)
        except (redis.RedisError, OSError) as exc:
            log.warning("budget hold of request %s not renewed (Redis: %s)", call.request.request_id, exc)

    async def _settle(self, call: Call, owners: list[str], start: common_pb2.ResponseStart | None,
                      usage: common_pb2.Usage | None) -> None:
        request_id = call.request.request_id
        # A cache's answer costs nothing (accounting prices it at 0), like a failed request.
        cost = 0 if call.cache_kind else answer_nanos(call.snapshot, start, usage, self._default_price)
        try:
            if cost > 0:
                await self._holds.settle_all(owners, request_id, cost, self._settings.budget_settled_hold_s)
            else:
                await self._holds.release_all(owners, request_id)
        except (redis.RedisError, OSError) as exc:  # the holds expire by themselves
            log.warning("budget hold of request %s not settled (Redis: %s); it expires", request_id, exc)


def _refusal(applicable: Applicable, reservation: Reservation, worst_nanos: int,
             period_end: datetime, now: datetime) -> RoutingError:
    budget = applicable.budget
    limit_nanos = to_nanos(budget.limit_usd)
    remaining = from_nanos(reservation.remaining_nanos(limit_nanos))
    spent, held = from_nanos(reservation.spent_nanos), from_nanos(reservation.held_nanos)
    retry_after = max(0, int((period_end - now).total_seconds()) + 1)
    in_flight = f" ${_usd(held)} is held by requests in flight;" if held else ""
    message = (f"Budget exhausted: {applicable.whose} has spent ${spent:.2f} of its "
               f"${budget.limit_usd:.2f} {budget.period} budget;{in_flight} ${_usd(remaining)} remains "
               f"and this request may cost up to ${_usd(from_nanos(worst_nanos))}. It resets at "
               f"{period_end:%Y-%m-%d %H:%M %Z}.")
    return RoutingError(429, message, code="budget_exhausted", type_="insufficient_quota", headers={
        "retry-after": str(retry_after),
        # x-should-retry: the openai and anthropic SDKs retry a 429 on their own unless told not
        # to; retrying cannot help until the period resets (or requests in flight end).
        "x-should-retry": "false",
        "x-budget-scope": applicable.scope,
        "x-budget-limit-usd": _usd(budget.limit_usd), "x-budget-remaining-usd": _usd(remaining),
        "x-budget-reset": period_end.isoformat()}, retry_after_s=float(retry_after))


def _usd(amount: Decimal) -> str:
    """Nano-dollar exact, without trailing zeros ("0.5", "12")."""
    text = f"{amount:.9f}".rstrip("0").rstrip(".")
    return text or "0"

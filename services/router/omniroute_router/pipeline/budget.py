"""The budget stage: spend budgets at the door. Before each request, one Redis GET of the key's
spend counter (accounting keeps it; see omniroute.limits.budget). An exhausted budget is refused with 429 in
the caller's format, not retryable and without fallback: no other account or model would make
the key's spend smaller."""

from __future__ import annotations

import logging

import redis.asyncio as redis

from omniroute.config.snapshot import ApiKey
from omniroute.limits.budget import Budget, check_budget
from omniroute.settings import Settings
from omniroute_router.errors import RoutingError
from omniroute_router.pipeline.call import Call, Events, Next, error_event

log = logging.getLogger("omniroute.router")


async def check(client: redis.Redis, settings: Settings, key: ApiKey | None) -> None:
    """Raise RoutingError(429) when the key's budget is spent. No Redis call for a key without
    a budget (the common case)."""
    if key is None or Budget.parse(key.budget) is None:
        return
    try:
        status = await check_budget(client, settings, key)
    except (redis.RedisError, OSError) as exc:
        # Fail open by default: budgets are settled from Postgres afterwards, and refusing every
        # budgeted request while Redis is away would turn a store blip into an outage.
        # OMNIROUTE_BUDGET_FAIL_OPEN=false makes the stricter choice (503, retryable later).
        if settings.budget_fail_open:
            log.warning("budget check skipped for key %s (Redis: %s); letting the request through",
                        key.id, exc)
            return
        raise RoutingError(503, "The budget of this API key cannot be checked right now; retry shortly.",
                           code="budget_unavailable", type_="server_error", retry_after_s=1.0) from exc
    if not status.exhausted:
        return
    retry_after = status.retry_after_s()
    raise RoutingError(429, status.message, code="budget_exhausted", type_="insufficient_quota",
                       # x-should-retry: the openai and anthropic SDKs retry a 429 on their own
                       # unless told not to; retrying cannot help until the period resets.
                       headers={"retry-after": str(retry_after), "x-should-retry": "false"},
                       retry_after_s=float(retry_after))


class BudgetGate:
    """The stage: a key whose budget is spent is refused before anything else is spent on it."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._redis = client
        self._settings = settings

    async def __call__(self, call: Call, next: Next) -> Events:
        try:
            await check(self._redis, self._settings, call.key)
        except RoutingError as exc:
            yield error_event(exc.to_proto())
            return
        async for event in next(call):
            yield event

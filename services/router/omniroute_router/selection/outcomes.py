"""What an attempt's outcome does to the shared state of its connection: failures cool it down,
count towards its breaker or lock the model on it; a success heals it."""

from __future__ import annotations

import logging

from omniroute.answers import INTERNAL_ERROR
from omniroute.config.routing_spec import ResilienceProfile, ResilienceSettings
from omniroute.config.snapshot import Connection
from omniroute.v1 import common_pb2
from omniroute_router.dispatch.classify import Failure, classify
from omniroute_router.selection.resolve import Target
from omniroute_router.state import RouterState

log = logging.getLogger("omniroute.router")


def profile_of(resilience: ResilienceSettings, target: Target, connection: Connection) -> ResilienceProfile:
    name = connection.settings.get("resilience_profile") or target.provider.settings.get("resilience_profile")
    return resilience.profile(name if isinstance(name, str) else None)


async def penalise(shared: RouterState, resilience: ResilienceSettings, target: Target, connection: Connection,
                   error: common_pb2.Error) -> Failure:
    failure = classify(error)
    if error.code in ("executor_unavailable", INTERNAL_ERROR):
        return failure  # our own executor hiccuped, or has a bug: not the account's fault
    cooldown = resilience.cooldown
    if failure is Failure.RATE_LIMITED:
        await shared.cooldowns.fail(connection.id, cooldown, reason="rate_limited",
                                    at_least_s=error.retry_after_s, model=target.model)
    elif failure in (Failure.AUTH, Failure.MISCONFIGURED):
        # A bad credential or base_url: nothing on this connection works until the admin fixes
        # it (saving the fix clears this); mark the whole connection for auth_s.
        await shared.cooldowns.fail(connection.id, cooldown, reason=failure.value, at_least_s=cooldown.auth_s)
    elif failure is Failure.MODEL_NOT_FOUND:
        await shared.cooldowns.lock_model(connection.id, target.model, cooldown.model_lock_s)
    elif failure is Failure.TRANSIENT:
        await shared.cooldowns.fail(connection.id, cooldown, reason=f"upstream {error.status}",
                                    at_least_s=error.retry_after_s, model=target.model)
    profile = profile_of(resilience, target, connection)
    if failure is not Failure.CALLER and error.status in profile.statuses:
        state = await shared.breakers.record(connection.id, False, profile)
        log.info("connection %s failed (%s %d): breaker %s", connection.id, failure.value,
                 error.status, state)
    return failure


async def reward(shared: RouterState, resilience: ResilienceSettings, target: Target,
                 connection: Connection) -> None:
    await shared.breakers.record(connection.id, True, profile_of(resilience, target, connection))
    await shared.cooldowns.succeed(connection.id, target.model)

"""A connection's health (cooldowns, model locks, breaker: omniroute.shared_state.health_keys) belongs
to its configuration: what it earned with a wrong base_url or an old credential says nothing about
the fixed one. Which connections a change reconfigures, and their clearing, for every path that
saves one: the providers API and dashboard, OAuth sign-in, the config file at start."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis import exceptions as redis_errors

from omniroute.config.spec import ProviderSpec
from omniroute.shared_state import health_keys
from omniroute_admin.state import AdminState

log = logging.getLogger("omniroute.admin")


def reconfigured(before: dict[str, Any], spec: ProviderSpec) -> list[str]:
    """The connections whose way to the upstream this update changes: all of the provider's
    when its type, base_url or settings change; else each connection given a credential or new
    settings; and those it removes."""
    old = {c["name"]: c for c in before["connections"]}
    names = {c.name for c in spec.connections} | set(old)
    if (before["type"], before["base_url"], before["settings"] or {}) != (spec.type, spec.base_url, spec.settings):
        changed = names
    else:
        changed = {c.name for c in spec.connections
                   if c.api_key is not None or c.name not in old or (old[c.name]["settings"] or {}) != c.settings}
        changed |= set(old) - {c.name for c in spec.connections}
    return sorted(f"{spec.id}:{name}" for name in changed)


async def forget(state: AdminState, connection_ids: list[str]) -> None:
    """Clear the cooldowns, model locks and breakers these connections earned with their old
    configuration (in the Redis every replica shares), after the announcement, and once more
    when the routers have surely reloaded (within milliseconds of it): a request that a router
    still sent with the old configuration in between must not mark the fixed connection."""
    if not connection_ids:
        return
    await health_keys.forget(state.redis, state.settings.env, connection_ids)
    again = asyncio.create_task(_forget_after_reload(state, connection_ids))
    _pending.add(again)
    again.add_done_callback(_pending.discard)


_RELOAD_S = 2.0
_pending: set[asyncio.Task[None]] = set()   # strong references until done


async def _forget_after_reload(state: AdminState, connection_ids: list[str]) -> None:
    await asyncio.sleep(_RELOAD_S)
    try:
        await health_keys.forget(state.redis, state.settings.env, connection_ids)
    except redis_errors.RedisError as exc:
        log.warning("could not clear the health of %s after their change: %s", connection_ids, exc)

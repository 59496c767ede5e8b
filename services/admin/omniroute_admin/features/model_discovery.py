"""Background reading of every provider's own model list, so that the routers' /models lists
offer what the providers do without asking them on a request's path (omniroute.model_lists).

Every admin replica runs the loop; a Redis lock lets one of them act per round. A provider is
read when it has no list yet (every round until one is read: at a start the executor may not
listen yet), when its configuration changed since the last read, every REFRESH_S, and every
RETRY_S while its reads fail (the last good list stays in use)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from omniroute.model_lists import ModelList, ModelLists, fingerprint
from omniroute.outages import STORE_OUTAGES, describe
from omniroute.store import config_repo
from omniroute_admin.services import catalog
from omniroute_admin.state import AdminState

log = logging.getLogger("omniroute.admin.model_discovery")
ROUND_S = 10.0
REFRESH_S = 600.0
RETRY_S = 30.0


def due(listed: ModelList | None, config: str, now: float) -> bool:
    if listed is None or listed.config != config or not listed.fetched_at:
        return True
    return now - listed.attempted_at >= (RETRY_S if listed.error else REFRESH_S)


async def run_once(state: AdminState) -> list[str]:
    """One round: reads the lists that are due; returns the providers read."""
    async with state.pool.connection() as conn:
        providers = [p for p in await config_repo.list_providers(conn, state.crypto) if p["enabled"]]
    stored = await ModelLists(state.redis, state.settings.env).read_all(p["id"] for p in providers)
    now = time.time()
    reading = [p["id"] for p in providers if due(stored.get(p["id"]), fingerprint(p), now)]
    for provider_id, outcome in zip(reading, await asyncio.gather(
            *(catalog.discover(state, p) for p in reading), return_exceptions=True), strict=True):
        if isinstance(outcome, BaseException):
            log.warning("reading the model list of %s failed: %s", provider_id, outcome)
        elif outcome.error and outcome.failed_at >= outcome.fetched_at:
            log.warning("the model list of %s cannot be read (%s); keeping its last good list",
                        provider_id, outcome.error)
    return reading


async def loop(state: AdminState, stop: asyncio.Event) -> None:
    """Rounds until `stop` is set. The lifespan sets it before cancelling: a cancellation that
    lands inside a library that swallows it (gRPC) must not keep the loop alive."""
    lock = f"{state.settings.env}:admin:model-discovery"
    while not stop.is_set():
        try:
            if await state.redis.set(lock, "1", nx=True, ex=int(ROUND_S)):
                await run_once(state)
        except asyncio.CancelledError:
            raise
        except STORE_OUTAGES as exc:   # Postgres or Redis restarting: the next round catches up
            log.warning("model list round skipped, a store is unreachable (%s)", describe(exc))
        except Exception as exc:  # the loop outlives a bad round; the next one tries again
            log.error("model list round failed: %r", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), ROUND_S)

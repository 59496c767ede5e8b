"""Background work of accounting: rebuild the Redis spend counters from Postgres (the truth), and
delete usage rows past the retention. With several replicas, a Redis lock lets one of them do
each periodic run; the rebuild at start runs unconditionally (this replica may be alone)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta

import redis.asyncio as redis
from psycopg_pool import AsyncConnectionPool

from omniroute.settings import Settings
from omniroute.shared_state import budget
from omniroute.store import budget_repo, usage_repo

log = logging.getLogger("omniroute.accounting.maintenance")


async def rebuild_spend(settings: Settings, pool: AsyncConnectionPool, client: redis.Redis,
                        now: datetime | None = None) -> int:
    """Raise every current-period counter to the Postgres sum; returns how many changed."""
    async with pool.connection() as conn:
        totals = await budget_repo.period_totals(conn, now)
    raised = await budget.raise_counters(client, settings.env, totals, now)
    if raised:
        log.info("raised %d spend counters to their Postgres totals", raised)
    return raised


async def apply_retention(settings: Settings, pool: AsyncConnectionPool,
                          now: datetime | None = None) -> int:
    if settings.usage_retention_days <= 0:
        return 0
    cutoff = (now or datetime.now(UTC)) - timedelta(days=settings.usage_retention_days)
    async with pool.connection() as conn:
        deleted = await usage_repo.delete_older_than(conn, cutoff)
    if deleted:
        log.info("retention: deleted %d usage rows older than %s", deleted, cutoff.isoformat())
    return deleted


async def _with_lock(client: redis.Redis, name: str, ttl_s: float) -> bool:
    """True when this replica took the run (the lock expires; it is never released early, so
    other replicas skip the rest of the interval too)."""
    return bool(await client.set(name, uuid.uuid4().hex, nx=True, ex=max(1, int(ttl_s))))


async def run(settings: Settings, pool: AsyncConnectionPool, client: redis.Redis,
              stop: asyncio.Event, rebuild_wanted: asyncio.Event) -> None:
    """Until `stop`: periodic rebuild (sooner when `rebuild_wanted` is set) and retention."""
    next_rebuild = _now() + settings.budget_rebuild_interval_s
    next_retention = _now()
    while not stop.is_set():
        try:
            if rebuild_wanted.is_set() or _now() >= next_rebuild:
                lock = f"{settings.env}:accounting:lock:rebuild"
                if rebuild_wanted.is_set() or await _with_lock(client, lock,
                                                               settings.budget_rebuild_interval_s):
                    await rebuild_spend(settings, pool, client)
                rebuild_wanted.clear()
                next_rebuild = _now() + settings.budget_rebuild_interval_s
            if _now() >= next_retention:
                lock = f"{settings.env}:accounting:lock:retention"
                if await _with_lock(client, lock, settings.retention_interval_s):
                    await apply_retention(settings, pool)
                next_retention = _now() + settings.retention_interval_s
        except Exception as exc:  # Postgres or Redis away: try again shortly, never crash
            log.warning("maintenance failed (%s); retrying", exc)
            rebuild_wanted.set()
        try:
            await asyncio.wait_for(stop.wait(), timeout=5.0)
        except TimeoutError:
            pass


def _now() -> float:
    return asyncio.get_running_loop().time()

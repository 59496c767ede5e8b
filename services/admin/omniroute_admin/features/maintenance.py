"""Background upkeep in the admin process: scheduled backups with retention, audit retention.

Every replica runs the loop; a Redis lock lets one of them act per round, so N replicas take
one backup, not N.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from omniroute.outages import STORE_OUTAGES, describe
from omniroute.store import audit_repo
from omniroute_admin import settings_model
from omniroute_admin.features import backup_store
from omniroute_admin.services.backups import take_backup
from omniroute_admin.state import AdminState

log = logging.getLogger("omniroute.admin.maintenance")
ROUND_S = 60.0


async def run_once(state: AdminState, now: datetime | None = None) -> dict[str, Any]:
    """One round; returns what it did (for tests and logs)."""
    now = now or datetime.now(UTC)
    done: dict[str, Any] = {}
    async with state.pool.connection() as conn:
        general = await settings_model.load(conn, "general", settings_model.GeneralSettings)
        done["audit_pruned"] = await audit_repo.prune(conn, general.audit_retention_days)
    if general.backup_interval_hours > 0:
        existing = await asyncio.to_thread(backup_store.listing, state.settings.backup_dir)
        scheduled = [b for b in existing if b["kind"] == "scheduled" and b["created_at"]]
        newest = max((datetime.fromisoformat(b["created_at"]) for b in scheduled), default=None)
        if newest is None or now - newest >= timedelta(hours=general.backup_interval_hours):
            done["backup"] = (await take_backup(state, "scheduled"))["id"]
        removed: list[str] = []
        for kind in ("scheduled", "pre-restore", "pre-import"):
            removed += await asyncio.to_thread(backup_store.prune, state.settings.backup_dir, kind,
                                               general.backup_keep)
        done["backups_pruned"] = removed
    return done


async def loop(state: AdminState) -> None:
    lock = f"{state.settings.env}:admin:maintenance"
    while True:
        # First round after a pause: a start (or a restart storm) does not begin with a backup.
        await asyncio.sleep(ROUND_S)
        try:
            if await state.redis.set(lock, "1", nx=True, ex=int(ROUND_S) - 5):
                done = await run_once(state)
                if done.get("backup") or done.get("audit_pruned") or done.get("backups_pruned"):
                    log.info("maintenance: %s", done)
        except asyncio.CancelledError:
            raise
        except STORE_OUTAGES as exc:   # Postgres or Redis restarting: the next round catches up
            log.warning("maintenance round skipped, a store is unreachable (%s); next round in %.0f s",
                        describe(exc), ROUND_S)
        except Exception:
            log.exception("maintenance round failed; next round in %.0f s", ROUND_S)

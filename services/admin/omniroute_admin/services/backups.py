"""Stored backups (take, list, restore, delete) and archives handed out or uploaded (export,
import). A restore first takes a safety backup of what is there, then replaces the tables in one
transaction (features/backups.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import HTTPException

from omniroute_admin import audit
from omniroute_admin.deps import Caller
from omniroute_admin.features import backup_store, backups
from omniroute_admin.state import AdminState


async def take_backup(state: AdminState, kind: str) -> dict[str, Any]:
    """A full archive stored as `kind` ("manual", "scheduled", "pre-restore" …)."""
    async with state.pool.connection() as conn:
        data = await backups.dump(conn, kind="full")
    return await asyncio.to_thread(backup_store.save, state.settings.backup_dir, kind, data)


async def list_backups(state: AdminState) -> list[dict[str, Any]]:
    return await asyncio.to_thread(backup_store.listing, state.settings.backup_dir)


async def create_backup(state: AdminState, caller: Caller) -> dict[str, Any]:
    created = await take_backup(state, "manual")
    await audit.record(state, caller, "backups.create", created["id"])
    return created


async def restore_archive(state: AdminState, caller: Caller, data: bytes, *, action: str,
                          target: str, safety_kind: str) -> dict[str, Any]:
    """Check, take a safety backup of what is there now, then restore in one transaction."""
    try:
        backups.read_archive(data)
    except backups.ArchiveError as exc:
        raise HTTPException(400, str(exc)) from None
    safety = await take_backup(state, safety_kind)
    try:
        async with state.pool.connection() as conn:
            rows = await backups.restore(conn, data)
    except backups.ArchiveError as exc:
        raise HTTPException(400, str(exc)) from None
    # After the restore: a full archive replaced the audit log, and this row must survive it.
    await audit.record(state, caller, action, target, detail={"rows": rows, "safety_backup": safety["id"]})
    await state.announce("restore")
    return {"restored": target, "rows": rows, "safety_backup": safety["id"]}


async def restore_backup(state: AdminState, caller: Caller, backup_id: str) -> dict[str, Any]:
    try:
        data = await asyncio.to_thread(backup_store.read, state.settings.backup_dir, backup_id)
    except KeyError:
        raise HTTPException(404, f"No backup {backup_id!r}.") from None
    return await restore_archive(state, caller, data, action="backups.restore", target=backup_id,
                                 safety_kind="pre-restore")


async def delete_backup(state: AdminState, caller: Caller, backup_id: str) -> None:
    try:
        await asyncio.to_thread(backup_store.delete, state.settings.backup_dir, backup_id)
    except KeyError:
        raise HTTPException(404, f"No backup {backup_id!r}.") from None
    await audit.record(state, caller, "backups.delete", backup_id)


async def export(state: AdminState, caller: Caller, kind: str) -> bytes:
    """An archive to hand out: "portable" (no password hash, no audit trail) or "full"."""
    async with state.pool.connection() as conn:
        data = await backups.dump(conn, kind=kind)
    await audit.record(state, caller, "backups.export", kind)
    return data

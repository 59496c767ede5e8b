"""/api/db-backups: list, create, restore, delete stored backups; export / import archives."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from omniroute_admin import audit, backup_store, backups
from omniroute_admin.deps import admin_state
from omniroute_admin.sessions import require_session
from omniroute_admin.state import AdminState

router = APIRouter(dependencies=[Depends(require_session)], tags=["backups"])
MAX_IMPORT_BYTES = 512 * 1024 * 1024


class RestoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=200)


async def take_backup(state: AdminState, kind: str) -> dict[str, Any]:
    async with state.pool.connection() as conn:
        data = await backups.dump(conn, kind="full")
    return await asyncio.to_thread(backup_store.save, state.settings.backup_dir, kind, data)


async def restore_archive(state: AdminState, request: Request, data: bytes, *, action: str,
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
    await audit.record(state, request, action, target, detail={"rows": rows, "safety_backup": safety["id"]})
    await state.announce("restore")
    return {"restored": target, "rows": rows, "safety_backup": safety["id"]}


@router.get("/api/db-backups", summary="Stored backups, newest first")
async def list_backups(request: Request) -> dict[str, Any]:
    state = admin_state(request)
    return {"backups": await asyncio.to_thread(backup_store.listing, state.settings.backup_dir)}


@router.put("/api/db-backups", status_code=201, summary="Take a backup now")
async def create_backup(request: Request) -> dict[str, Any]:
    state = admin_state(request)
    created = await take_backup(state, "manual")
    await audit.record(state, request, "backups.create", created["id"])
    return created


@router.post("/api/db-backups", summary="Restore a stored backup (one transaction)")
async def restore_backup(body: RestoreRequest, request: Request) -> dict[str, Any]:
    state = admin_state(request)
    try:
        data = await asyncio.to_thread(backup_store.read, state.settings.backup_dir, body.id)
    except KeyError:
        raise HTTPException(404, f"No backup {body.id!r}.") from None
    return await restore_archive(state, request, data, action="backups.restore", target=body.id,
                                 safety_kind="pre-restore")


@router.delete("/api/db-backups/{backup_id}", summary="Delete a stored backup")
async def delete_backup(backup_id: str, request: Request) -> dict[str, Any]:
    state = admin_state(request)
    try:
        await asyncio.to_thread(backup_store.delete, state.settings.backup_dir, backup_id)
    except KeyError:
        raise HTTPException(404, f"No backup {backup_id!r}.") from None
    await audit.record(state, request, "backups.delete", backup_id)
    return {"deleted": backup_id}


def _download(data: bytes, stem: str) -> Response:
    name = f"{stem}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.tar.gz"
    return Response(data, media_type="application/gzip",
                    headers={"content-disposition": f'attachment; filename="{name}"'})


@router.get("/api/db-backups/export", summary="Configuration and usage as a portable .tar.gz",
            response_class=Response)
async def export_portable(request: Request) -> Response:
    state = admin_state(request)
    async with state.pool.connection() as conn:
        data = await backups.dump(conn, kind="portable")
    await audit.record(state, request, "backups.export", "portable")
    return _download(data, "omniroute-export")


@router.get("/api/db-backups/exportAll", summary="Everything as a .tar.gz", response_class=Response)
async def export_all(request: Request) -> Response:
    state = admin_state(request)
    async with state.pool.connection() as conn:
        data = await backups.dump(conn, kind="full")
    await audit.record(state, request, "backups.export", "full")
    return _download(data, "omniroute-full")


@router.post("/api/db-backups/import",
             summary="Upload an archive (raw .tar.gz body) to replace the tables it carries")
async def import_archive(request: Request) -> dict[str, Any]:
    state = admin_state(request)
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > MAX_IMPORT_BYTES:
            raise HTTPException(413, f"The archive is larger than {MAX_IMPORT_BYTES} bytes.")
    if not data:
        raise HTTPException(400, "Send the .tar.gz archive as the request body.")
    return await restore_archive(state, request, bytes(data), action="backups.import", target="upload",
                                 safety_kind="pre-import")

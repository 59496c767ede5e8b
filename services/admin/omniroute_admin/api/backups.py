"""/api/db-backups: list, create, restore, delete stored backups; export / import archives (the
use cases: services/backups.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from omniroute_admin.access import requires
from omniroute_admin.deps import CallerDep, StateDep
from omniroute_admin.services import backups
from omniroute_admin.sessions import require_session

router = APIRouter(dependencies=[Depends(require_session)], tags=["backups"])
MAX_IMPORT_BYTES = 512 * 1024 * 1024


class RestoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=200)


@router.get("/api/db-backups", summary="Stored backups, newest first")
async def list_backups(state: StateDep) -> dict[str, Any]:
    return {"backups": await backups.list_backups(state)}


@router.put("/api/db-backups", status_code=201, summary="Take a backup now")
async def create_backup(state: StateDep, caller: CallerDep) -> dict[str, Any]:
    return await backups.create_backup(state, caller)


@router.post("/api/db-backups", openapi_extra=requires("owner"), summary="Restore a stored backup (one transaction)")
async def restore_backup(body: RestoreRequest, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    return await backups.restore_backup(state, caller, body.id)


@router.delete("/api/db-backups/{backup_id}", summary="Delete a stored backup")
async def delete_backup(backup_id: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await backups.delete_backup(state, caller, backup_id)
    return {"deleted": backup_id}


def _download(data: bytes, stem: str) -> Response:
    name = f"{stem}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.tar.gz"
    return Response(data, media_type="application/gzip",
                    headers={"content-disposition": f'attachment; filename="{name}"'})


@router.get("/api/db-backups/export", openapi_extra=requires("admin"),
            summary="Configuration and usage as a portable .tar.gz",
            response_class=Response)
async def export_portable(state: StateDep, caller: CallerDep) -> Response:
    return _download(await backups.export(state, caller, "portable"), "omniroute-export")


@router.get("/api/db-backups/exportAll", openapi_extra=requires("admin"),
            summary="Everything as a .tar.gz", response_class=Response)
async def export_all(state: StateDep, caller: CallerDep) -> Response:
    return _download(await backups.export(state, caller, "full"), "omniroute-full")


@router.post("/api/db-backups/import", openapi_extra=requires("owner"),
             summary="Upload an archive (raw .tar.gz body) to replace the tables it carries")
async def import_archive(request: Request, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > MAX_IMPORT_BYTES:
            raise HTTPException(413, f"The archive is larger than {MAX_IMPORT_BYTES} bytes.")
    if not data:
        raise HTTPException(400, "Send the .tar.gz archive as the request body.")
    return await backups.restore_archive(state, caller, bytes(data), action="backups.import",
                                         target="upload", safety_kind="pre-import")

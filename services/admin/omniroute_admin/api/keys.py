"""/api/keys: OmniRoute API keys and their lifecycle (update in place, rotate, revoke, delete).
Team admins reach their teams' keys only (404 for any other)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from omniroute.config.spec import KeySpec
from omniroute_admin.access import requires
from omniroute_admin.deps import CallerDep, StateDep
from omniroute_admin.services import keys
from omniroute_admin.services.keys import KeyChange, Rotation
from omniroute_admin.sessions import require_session

router = APIRouter(dependencies=[Depends(require_session)], tags=["keys"])
TEAM_ADMIN = requires("team_admin")
# Every role reads; a team admin only their teams' keys.
SCOPED_READ = requires("viewer", team_scoped=True)


@router.get("/api/keys", openapi_extra=SCOPED_READ)
async def list_keys(state: StateDep, caller: CallerDep, team: str | None = Query(None)) -> dict[str, Any]:
    """Every key the caller may see (a team admin: their teams'), never a secret; `team` narrows."""
    return {"keys": await keys.list_keys(state, caller, team)}


@router.post("/api/keys", status_code=201, openapi_extra=TEAM_ADMIN)
async def create_key(spec: KeySpec, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    """A new key in `team` (default "default"), optionally for `person` (id or e-mail); the
    answer's `key` is the secret, shown this once."""
    return await keys.create_key(state, caller, spec)


@router.get("/api/keys/{key_id}", openapi_extra=SCOPED_READ)
async def get_key(key_id: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    return await keys.get_key(state, caller, key_id)


@router.patch("/api/keys/{key_id}", openapi_extra=TEAM_ADMIN)
async def update_key(key_id: str, change: KeyChange, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    """Change limits, allowed_models, budget, expires_at, enabled, team or person in place."""
    return await keys.update_key(state, caller, key_id, change)


@router.post("/api/keys/{key_id}/rotate", openapi_extra=TEAM_ADMIN)
async def rotate_key(key_id: str, state: StateDep, caller: CallerDep,
                     rotation: Rotation | None = None) -> dict[str, Any]:
    """A new secret (`key`, shown once); the old one is accepted `grace_seconds` more (0 to 30
    days; default 0: refused at once)."""
    return await keys.rotate_key(state, caller, key_id, rotation or Rotation())


@router.post("/api/keys/{key_id}/revoke", openapi_extra=TEAM_ADMIN)
async def revoke_key(key_id: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    """Refused at once ("API key revoked"); the key stays listed with its usage."""
    return await keys.revoke_key(state, caller, key_id)


@router.delete("/api/keys/{key_id}")
async def delete_key(key_id: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    """Delete the key for good (admin)."""
    await keys.delete_key(state, caller, key_id)
    return {"deleted": key_id}

"""/api/tokens: management API tokens for automation (Authorization: Bearer omr_mt_…), each with a
role and, for team_admin, one team. The secret is in the creation answer only (the use cases:
services/tokens.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from omniroute_admin.access import Role
from omniroute_admin.deps import CallerDep, StateDep
from omniroute_admin.services import tokens
from omniroute_admin.sessions import require_session

router = APIRouter(dependencies=[Depends(require_session)], tags=["tokens"])


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:@-]+$")
    role: Role
    team_id: str | None = Field(None, min_length=1, max_length=100)
    expires_at: datetime | None = None


@router.get("/api/tokens", summary="Management tokens (never their secrets)")
async def list_tokens(state: StateDep) -> dict[str, Any]:
    return {"tokens": await tokens.listing(state)}


@router.post("/api/tokens", status_code=201,
             summary="Create a management token (the secret is shown in this answer only)")
async def create_token(body: TokenBody, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    return await tokens.create(state, caller, name=body.name, role=body.role, team_id=body.team_id,
                               expires_at=body.expires_at)


@router.delete("/api/tokens/{token_id}", summary="Revoke a management token (refused at once)")
async def delete_token(token_id: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await tokens.revoke(state, caller, token_id)
    return {"deleted": token_id}

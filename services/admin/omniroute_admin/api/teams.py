"""/api/teams: teams with their allowed models, rate limits and budget (the shapes of the config
file's `teams:`). Every role reads them (a team admin only their own teams); changes need
the admin role."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from omniroute.config.spec import TeamSpec
from omniroute_admin.access import requires
from omniroute_admin.deps import CallerDep, StateDep
from omniroute_admin.services import teams
from omniroute_admin.services.teams import TeamChange
from omniroute_admin.sessions import require_session

router = APIRouter(dependencies=[Depends(require_session)], tags=["teams"])


@router.get("/api/teams", openapi_extra=requires("viewer", team_scoped=True))
async def list_teams(state: StateDep, caller: CallerDep) -> dict[str, Any]:
    """Every team the caller may see (a team admin: theirs), each with its key count."""
    return {"teams": await teams.list_teams(state, caller)}


@router.post("/api/teams", status_code=201)
async def create_team(spec: TeamSpec, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    return await teams.create_team(state, caller, spec)


@router.get("/api/teams/{team_id}", openapi_extra=requires("viewer", team_scoped=True))
async def get_team(team_id: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    return await teams.get_team(state, caller, team_id)


@router.put("/api/teams/{team_id}")
async def replace_team(team_id: str, spec: TeamSpec, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    return await teams.replace_team(state, caller, team_id, spec)


@router.patch("/api/teams/{team_id}")
async def change_team(team_id: str, change: TeamChange, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    return await teams.change_team(state, caller, team_id, change)


@router.delete("/api/teams/{team_id}")
async def delete_team(team_id: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    """409 while keys belong to the team; the team "default" is never deleted."""
    await teams.delete_team(state, caller, team_id)
    return {"deleted": team_id}

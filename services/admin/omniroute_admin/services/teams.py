"""Teams: each with its allowed models, rate limits (shared by every key of the team) and budget.
Team admins read only their teams (404 for any other); changes are an admin's. Every change is
audited with the team's id and announced (config.changed) so edges and routers reload."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field, field_validator

from omniroute.config.spec import BudgetSpec, LimitsSpec, TeamSpec, checked_mcp_access
from omniroute.store import teams_repo
from omniroute_admin import audit
from omniroute_admin.deps import Caller
from omniroute_admin.state import AdminState


class TeamChange(BaseModel):
    """PATCH /api/teams/{id}: the fields given are set (null budget: none; null allowed_models:
    every model)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    allowed_models: list[str] | None = None
    limits: LimitsSpec | None = None
    budget: BudgetSpec | None = None
    mcp_access: dict[str, list[str]] | None = None   # null: no MCP server (default deny)

    @field_validator("mcp_access")
    @classmethod
    def _mcp_access(cls, value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        return checked_mcp_access(value)


def _missing(team_id: str) -> HTTPException:
    return HTTPException(404, f"No team {team_id!r}.")


async def list_teams(state: AdminState, caller: Caller) -> list[dict[str, Any]]:
    scope = None if caller.principal.is_global else sorted(caller.principal.team_ids)
    async with state.pool.connection() as conn:
        return await teams_repo.list_teams(conn, scope)


async def get_team(state: AdminState, caller: Caller, team_id: str) -> dict[str, Any]:
    if not caller.principal.sees_team(team_id):
        raise _missing(team_id)
    async with state.pool.connection() as conn:
        found = await teams_repo.list_teams(conn, [team_id])
    if not found:
        raise _missing(team_id)
    return found[0]


def spec_of(team: dict[str, Any]) -> TeamSpec:
    return TeamSpec.model_validate({"id": team["id"], "name": team["name"],
                                    "allowed_models": team["allowed_models"], "limits": team["limits"] or {},
                                    "budget": team["budget"], "mcp_access": team.get("mcp_access")})


async def _save(conn: AsyncConnection[Any], spec: TeamSpec) -> dict[str, Any]:
    if await teams_repo.name_taken(conn, spec.display_name, spec.id):
        raise HTTPException(409, f"Another team is named {spec.display_name!r}.")
    await teams_repo.upsert(conn, spec)
    saved = await teams_repo.list_teams(conn, [spec.id])
    return saved[0]


async def create_team(state: AdminState, caller: Caller, spec: TeamSpec) -> dict[str, Any]:
    async with state.pool.connection() as conn, conn.transaction():
        if await teams_repo.exists(conn, spec.id):
            raise HTTPException(409, f"A team {spec.id!r} exists; use PUT or PATCH to change it.")
        created = await _save(conn, spec)
        await audit.record(state, caller, "teams.create", spec.id, conn=conn, after=spec.model_dump(mode="json"),
                           detail={"team_id": spec.id}, team_id=spec.id)
    await state.announce("teams")
    return created


async def replace_team(state: AdminState, caller: Caller, team_id: str, spec: TeamSpec) -> dict[str, Any]:
    """PUT: the team becomes `spec` (created when it did not exist)."""
    if spec.id != team_id:
        raise HTTPException(400, "The id in the body must match the id in the path.")
    async with state.pool.connection() as conn, conn.transaction():
        before = await teams_repo.get(conn, team_id)
        updated = await _save(conn, spec)
        await audit.record(state, caller, "teams.update" if before else "teams.create", team_id, conn=conn,
                           before=before, after=spec.model_dump(mode="json"),
                           detail={"team_id": team_id}, team_id=team_id)
    await state.announce("teams")
    return updated


async def change_team(state: AdminState, caller: Caller, team_id: str, change: TeamChange) -> dict[str, Any]:
    async with state.pool.connection() as conn, conn.transaction():
        before = await teams_repo.get(conn, team_id)
        if before is None:
            raise _missing(team_id)
        spec = spec_of(before).model_copy(update={name: getattr(change, name) for name in change.model_fields_set})
        updated = await _save(conn, TeamSpec.model_validate(spec.model_dump()))
        await audit.record(state, caller, "teams.update", team_id, conn=conn, before=before,
                           after=spec.model_dump(mode="json"),
                           detail={"team_id": team_id, "fields": sorted(change.model_fields_set)}, team_id=team_id)
    await state.announce("teams")
    return updated


async def delete_team(state: AdminState, caller: Caller, team_id: str) -> None:
    if team_id == teams_repo.DEFAULT_TEAM:
        raise HTTPException(409, "The team 'default' cannot be deleted (keys without a team belong to it).")
    async with state.pool.connection() as conn, conn.transaction():
        before = await teams_repo.get(conn, team_id)
        if before is None:
            raise _missing(team_id)
        keys = await teams_repo.key_count(conn, team_id)
        if keys:
            raise HTTPException(409, f"Team {team_id!r} still has {keys} key(s): move or delete them first.")
        await teams_repo.delete(conn, team_id)
        await audit.record(state, caller, "teams.delete", team_id, conn=conn, before=before,
                           detail={"team_id": team_id}, team_id=team_id)
    await state.announce("teams")

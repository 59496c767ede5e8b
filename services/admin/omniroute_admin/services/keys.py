"""OmniRoute API keys and their lifecycle: create (in a team, optionally for a person), update in
place, rotate with a grace period, revoke, delete. Team admins reach only their teams' keys: any
other key, or another team, is a 404 (ids do not leak). Every change is audited with the key's
team and announced (config.changed), so every edge and router reloads its snapshot."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import HTTPException
from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field, field_validator

from omniroute.config.spec import KeySpec, LimitsSpec, checked_budget, checked_mcp_access
from omniroute.store import config_repo
from omniroute_admin import audit
from omniroute_admin.deps import Caller
from omniroute_admin.state import AdminState

MAX_GRACE_S = 30 * 86_400
_ID = r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$"


class KeyChange(BaseModel):
    """PATCH /api/keys/{id}: the fields given are set (null clears expires_at, budget, person;
    null allowed_models = every model); the secret is unchanged."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    allowed_models: list[str] | None = None
    limits: dict[str, Any] | None = None
    budget: dict[str, Any] | None = None
    expires_at: datetime | None = None
    team: str | None = Field(default=None, pattern=_ID)
    person: str | None = Field(default=None, max_length=200)
    # MCP tools, narrowing the team's (null: the team's).
    mcp_access: dict[str, list[str]] | None = None

    @field_validator("mcp_access")
    @classmethod
    def _mcp_access(cls, value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        return checked_mcp_access(value)

    @field_validator("budget")
    @classmethod
    def _budget(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return checked_budget(value)

    @field_validator("limits")
    @classmethod
    def _limits(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            LimitsSpec.model_validate(value)
        return value

    @field_validator("expires_at")
    @classmethod
    def _zoned(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2027-01-01T00:00:00Z)")
        return value


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: int = Field(default=0, ge=0, le=MAX_GRACE_S)


def _team_scope(caller: Caller) -> list[str] | None:
    return None if caller.principal.is_global else sorted(caller.principal.team_ids)


def _no_key(key_id: str) -> HTTPException:
    return HTTPException(404, f"No key {key_id!r}.")


def _no_team(team_id: str) -> HTTPException:
    return HTTPException(404, f"No team {team_id!r}.")


async def _visible_key(conn: AsyncConnection[Any], caller: Caller, key_id: str) -> dict[str, Any]:
    found = await config_repo.get_key(conn, key_id)
    if found is None or not caller.principal.sees_team(found["team"]):
        raise _no_key(key_id)
    return found


async def list_keys(state: AdminState, caller: Caller, team: str | None = None) -> list[dict[str, Any]]:
    scope = _team_scope(caller)
    if team is not None:
        if not caller.principal.sees_team(team):
            raise _no_team(team)
        scope = [team]
    async with state.pool.connection() as conn:
        return await config_repo.list_keys(conn, scope)


async def get_key(state: AdminState, caller: Caller, key_id: str) -> dict[str, Any]:
    async with state.pool.connection() as conn:
        return await _visible_key(conn, caller, key_id)


async def create_key(state: AdminState, caller: Caller, spec: KeySpec) -> dict[str, Any]:
    """The new key, in clear: the only time it is shown (only its hash is stored)."""
    if not caller.principal.sees_team(spec.team):
        raise _no_team(spec.team)
    async with state.pool.connection() as conn, conn.transaction():
        if await config_repo.get_key(conn, spec.name) is not None:
            raise HTTPException(409, f"A key named {spec.name!r} exists.")
        try:
            key_id, clear = await config_repo.create_key(conn, spec)
        except config_repo.UnknownOwner as exc:
            raise HTTPException(400, str(exc)) from None
        created = await config_repo.get_key(conn, key_id)
        await audit.record(state, caller, "keys.create", key_id, conn=conn,
                           after=spec.model_dump(mode="json", exclude={"key"}),
                           detail={"team_id": spec.team}, team_id=spec.team)
    await state.announce("keys")
    return {**(created or {}), "key": clear}


async def update_key(state: AdminState, caller: Caller, key_id: str, change: KeyChange) -> dict[str, Any]:
    given = change.model_fields_set
    async with state.pool.connection() as conn, conn.transaction():
        before = await _visible_key(conn, caller, key_id)
        changes: dict[str, Any] = {name: getattr(change, name)
                                   for name in ("enabled", "allowed_models", "limits", "budget", "expires_at",
                                                "mcp_access")
                                   if name in given}
        if "enabled" in changes and changes["enabled"] is None:
            raise HTTPException(400, "enabled must be true or false.")
        if "limits" in changes and changes["limits"] is None:
            changes["limits"] = {}
        if "team" in given:
            if change.team is None:
                raise HTTPException(400, "A key always belongs to a team.")
            if not caller.principal.sees_team(change.team):
                raise _no_team(change.team)
            changes["team_id"] = change.team
        try:
            if "team_id" in changes:
                await config_repo.check_team(conn, changes["team_id"])
            if "person" in given:
                changes["person_id"] = await config_repo.resolve_person(conn, change.person)
        except config_repo.UnknownOwner as exc:
            raise HTTPException(400, str(exc)) from None
        await config_repo.update_key(conn, before["id"], changes)
        after = await config_repo.get_key(conn, before["id"])
        await audit.record(state, caller, "keys.update", before["id"], conn=conn, before=before, after=after,
                           detail={"team_id": (after or before)["team"], "fields": sorted(given),
                                   **({"from_team": before["team"]} if "team_id" in changes else {})},
                           team_id=(after or before)["team"])
    await state.announce("keys")
    return after or before


async def rotate_key(state: AdminState, caller: Caller, key_id: str, rotation: Rotation) -> dict[str, Any]:
    """A new secret, shown once; the old one stays valid `grace_seconds` more, then refused."""
    async with state.pool.connection() as conn, conn.transaction():
        before = await _visible_key(conn, caller, key_id)
        if before["state"] == "revoked":
            raise HTTPException(409, f"Key {key_id!r} is revoked; create a new key instead.")
        clear = await config_repo.rotate_key(conn, before["id"], rotation.grace_seconds)
        after = await config_repo.get_key(conn, before["id"])
        await audit.record(state, caller, "keys.rotate", before["id"], conn=conn,
                           detail={"team_id": before["team"], "grace_seconds": rotation.grace_seconds},
                           team_id=before["team"])
    await state.announce("keys")
    return {**(after or before), "key": clear, "previous_valid_until": (after or before)["rotating_until"]}


async def revoke_key(state: AdminState, caller: Caller, key_id: str) -> dict[str, Any]:
    """Refused at once on every edge; the row stays (its usage keeps the key's name)."""
    async with state.pool.connection() as conn, conn.transaction():
        before = await _visible_key(conn, caller, key_id)
        await config_repo.revoke_key(conn, before["id"])
        after = await config_repo.get_key(conn, before["id"])
        await audit.record(state, caller, "keys.revoke", before["id"], conn=conn,
                           detail={"team_id": before["team"]}, team_id=before["team"])
    await state.announce("keys")
    return after or before


async def delete_key(state: AdminState, caller: Caller, key_id: str) -> None:
    """A hard delete (revoke keeps the row)."""
    async with state.pool.connection() as conn, conn.transaction():
        before = await _visible_key(conn, caller, key_id)
        await config_repo.delete_key(conn, before["id"])
        await audit.record(state, caller, "keys.delete", before["id"], conn=conn,
                           detail={"team_id": before["team"]}, team_id=before["team"])
    await state.announce("keys")

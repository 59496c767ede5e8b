"""The dashboard's Teams and API keys pages: teams with their models, limits and budget; keys
with their team, person and state (active, revoked, expired, rotating until …), created, rotated,
revoked and deleted here. Every action calls the same use case as the JSON API (services/keys.py,
services/teams.py), so scoping (a team admin sees only their teams), audit rows and config
announcements are identical."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError
from starlette.responses import Response

from omniroute.config.spec import KeySpec, TeamSpec
from omniroute_admin.access import TEAM_SCOPED_READ, Role, requires
from omniroute_admin.dashboard.base import back, button, error_text, form, gate, page, split
from omniroute_admin.deps import Caller, admin_state
from omniroute_admin.services import keys, teams
from omniroute_admin.services.keys import Rotation
from omniroute_admin.services.teams import TeamChange

router = APIRouter(include_in_schema=False)


def _number(fields: dict[str, str], name: str) -> int | None:
    value = fields.get(name, "").strip()
    return int(value) if value else None


def _budget(fields: dict[str, str]) -> dict[str, Any] | None:
    limit = fields.get("budget", "").strip()
    if not limit:
        return None
    return {"limit": float(limit), "period": fields.get("budget_period") or "monthly"}


def _needs(caller: Caller, role: Role) -> None:
    """The API's rule for the same use case (api/keys.py, api/teams.py): a viewer changes
    nothing, a team admin manages keys (of their teams: the use case scopes), an admin teams."""
    if not caller.principal.at_least(role):
        raise HTTPException(403, f"This needs the {role} role; you are {caller.principal.role}.")


def _admin_only(caller: Caller) -> None:
    _needs(caller, "admin")


# --- teams ---------------------------------------------------------------------------------------

@router.get("/dashboard/teams", openapi_extra=TEAM_SCOPED_READ)
async def teams_page(request: Request) -> Response:
    caller = await gate(request)
    listed = await teams.list_teams(admin_state(request), caller)
    return await page(request, "teams.html", "teams", {
        "teams": listed, "can_edit": caller.principal.at_least("admin")})


def _team_fields(fields: dict[str, str]) -> dict[str, Any]:
    limits = {"rpm": _number(fields, "rpm"), "tpm": _number(fields, "tpm"),
              "concurrency": _number(fields, "concurrency")}
    return {"name": fields.get("name", "").strip(),
            "allowed_models": split(fields.get("allowed_models", "")) or None,
            "limits": {k: v for k, v in limits.items() if v is not None}, "budget": _budget(fields)}


@router.post("/dashboard/teams")
async def team_create(request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)
    try:
        _admin_only(caller)
        spec = TeamSpec.model_validate({"id": fields.get("id", "").strip(), **_team_fields(fields)})
        await teams.create_team(admin_state(request), caller, spec)
    except (HTTPException, ValidationError, ValueError) as exc:
        return back("/dashboard/teams", f"Not created: {error_text(exc)}", "error")
    return back("/dashboard/teams", f"Team {spec.id} created.")


@router.post("/dashboard/teams/{team_id}")
async def team_update(team_id: str, request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)
    try:
        _admin_only(caller)
        change = TeamChange.model_validate({k: v for k, v in _team_fields(fields).items()
                                            if k != "name" or v})
        await teams.change_team(admin_state(request), caller, team_id, change)
    except (HTTPException, ValidationError, ValueError) as exc:
        return back("/dashboard/teams", f"Not saved: {error_text(exc)}", "error")
    return back("/dashboard/teams", f"Team {team_id} saved.")


@router.post("/dashboard/teams/{team_id}/delete")
async def team_delete(team_id: str, request: Request) -> Response:
    async def delete(caller: Caller) -> None:
        _admin_only(caller)
        await teams.delete_team(admin_state(request), caller, team_id)
    return await button(request, "/dashboard/teams", delete, lambda _: f"Team {team_id} deleted.")


# --- API keys ------------------------------------------------------------------------------------

async def _keys_page(request: Request, caller: Caller, new_key: dict[str, Any] | None = None,
                     status: int = 200) -> Response:
    state = admin_state(request)
    listed = await keys.list_keys(state, caller)
    team_ids = [t["id"] for t in await teams.list_teams(state, caller)]
    return await page(request, "keys.html", "keys", {
        "keys": listed, "new_key": new_key, "teams": team_ids, "max_grace": keys.MAX_GRACE_S,
        "can_manage": caller.principal.at_least("team_admin"), "can_delete": caller.principal.at_least("admin")},
        status=status)


@router.get("/dashboard/keys", openapi_extra=TEAM_SCOPED_READ)
async def keys_page(request: Request) -> Response:
    caller = await gate(request)
    return await _keys_page(request, caller)


@router.post("/dashboard/keys", openapi_extra=requires("team_admin"))
async def key_create(request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)
    try:
        _needs(caller, "team_admin")
        spec = KeySpec.model_validate({
            "name": fields.get("name", ""), "allowed_models": split(fields.get("allowed_models", "")) or None,
            "expires_at": fields.get("expires_at") or None, "budget": _budget(fields),
            "team": fields.get("team") or "default", "person": fields.get("person", "").strip() or None})
        created = await keys.create_key(admin_state(request), caller, spec)
    except (HTTPException, ValidationError, ValueError) as exc:
        return back("/dashboard/keys", f"Not created: {error_text(exc)}", "error")
    # Rendered directly (no redirect): the clear key exists only in this answer.
    return await _keys_page(request, caller, new_key={**created, "action": "created"}, status=201)


@router.post("/dashboard/keys/{key_id}/rotate", openapi_extra=requires("team_admin"))
async def key_rotate(key_id: str, request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)
    try:
        _needs(caller, "team_admin")
        rotation = Rotation.model_validate({"grace_seconds": _number(fields, "grace_seconds") or 0})
        rotated = await keys.rotate_key(admin_state(request), caller, key_id, rotation)
    except (HTTPException, ValidationError, ValueError) as exc:
        return back("/dashboard/keys", f"Not rotated: {error_text(exc)}", "error")
    return await _keys_page(request, caller, new_key={**rotated, "action": "rotated"})


@router.post("/dashboard/keys/{key_id}/revoke", openapi_extra=requires("team_admin"))
async def key_revoke(key_id: str, request: Request) -> Response:
    async def revoke(caller: Caller) -> dict[str, Any]:
        _needs(caller, "team_admin")
        return await keys.revoke_key(admin_state(request), caller, key_id)
    return await button(request, "/dashboard/keys", revoke, lambda revoked: f"Key {revoked['name']} revoked.")


@router.post("/dashboard/keys/{key_id}/delete")
async def key_delete(key_id: str, request: Request) -> Response:
    async def delete(caller: Caller) -> None:
        _admin_only(caller)
        await keys.delete_key(admin_state(request), caller, key_id)
    return await button(request, "/dashboard/keys", delete, lambda _: "Key deleted.")

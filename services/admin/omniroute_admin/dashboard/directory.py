"""The dashboard's People and Management tokens pages: list, create, delete — through the same
use cases as /api/people and /api/tokens (services/people.py, services/tokens.py), so the same
rules (owners alone touch owners; a team admin's teams must exist), audit rows and roles apply.
A new token's secret is in the creation answer only (rendered, never redirected to)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError
from starlette.responses import Response

from omniroute.config.spec import PersonSpec
from omniroute_admin import access
from omniroute_admin.api.tokens import TokenBody
from omniroute_admin.dashboard.base import back, button, error_text, form, gate, page, split
from omniroute_admin.deps import Caller, admin_state
from omniroute_admin.services import people, tokens

router = APIRouter(include_in_schema=False)


@router.get("/dashboard/people")
async def people_page(request: Request) -> Response:
    await gate(request)
    return await page(request, "people.html", "people", {
        "people": await people.listing(admin_state(request)), "roles": access.ROLES})


@router.post("/dashboard/people")
async def person_create(request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)
    try:
        spec = PersonSpec.model_validate({"email": fields.get("email", "").strip(),
                                          "name": fields.get("name", "").strip(),
                                          "role": fields.get("role", ""),
                                          "team_ids": split(fields.get("team_ids", ""))})
        created = await people.create(admin_state(request), caller, people.fields_of(spec))
    except (HTTPException, ValidationError, ValueError) as exc:
        return back("/dashboard/people", f"Not added: {error_text(exc)}", "error")
    return back("/dashboard/people", f"{created['email']} added as {created['role']}.")


@router.post("/dashboard/people/{person_id}/delete")
async def person_delete(person_id: str, request: Request) -> Response:
    async def remove(caller: Caller) -> None:
        await people.delete(admin_state(request), caller, person_id)
    return await button(request, "/dashboard/people", remove, lambda _: "Person removed.")


async def _tokens_page(request: Request, *, new_token: dict[str, object] | None = None,
                       status: int = 200) -> Response:
    return await page(request, "tokens.html", "tokens", {
        "tokens": await tokens.listing(admin_state(request)), "roles": access.ROLES,
        "new_token": new_token}, status=status)


@router.get("/dashboard/tokens")
async def tokens_page(request: Request) -> Response:
    await gate(request)
    return await _tokens_page(request)


@router.post("/dashboard/tokens")
async def token_create(request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)
    try:
        body = TokenBody.model_validate({"name": fields.get("name", "").strip(), "role": fields.get("role", ""),
                                         "team_id": fields.get("team_id", "").strip() or None,
                                         "expires_at": fields.get("expires_at", "").strip() or None})
        created = await tokens.create(admin_state(request), caller, name=body.name, role=body.role,
                                      team_id=body.team_id, expires_at=body.expires_at)
    except (HTTPException, ValidationError, ValueError) as exc:
        return back("/dashboard/tokens", f"Not created: {error_text(exc)}", "error")
    # Rendered directly (no redirect): the secret exists only in this answer.
    return await _tokens_page(request, new_token=created, status=201)


@router.post("/dashboard/tokens/{token_id}/delete")
async def token_delete(token_id: str, request: Request) -> Response:
    async def revoke(caller: Caller) -> None:
        await tokens.revoke(admin_state(request), caller, token_id)
    return await button(request, "/dashboard/tokens", revoke, lambda _: "Token revoked: refused from now on.")

"""Password change, first-run state and the list of sessions (login and logout: sessions.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from omniroute_admin import passwords, sessions
from omniroute_admin.access import requires
from omniroute_admin.api import oidc
from omniroute_admin.deps import CallerDep, StateDep
from omniroute_admin.services import auth

router = APIRouter(tags=["auth"])


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=passwords.MIN_LENGTH, max_length=1024)


@router.put("/api/auth/password", dependencies=[Depends(sessions.require_session)],
            openapi_extra=requires("owner"),
            summary="Change the admin password (ends every other session)")
async def change_password(body: PasswordChange, request: Request, state: StateDep,
                          caller: CallerDep) -> dict[str, Any]:
    token, _ = sessions.presented_token(request)
    await auth.change_password(state, caller, body.current_password, body.new_password, keep_token=token)
    return {"success": True}


@router.get("/api/init", summary="First-run state (no login needed)")
async def init_state(request: Request, state: StateDep) -> dict[str, Any]:
    """What a dashboard or installer needs before logging in; reveals no configuration."""
    session, _ = await sessions.current_session(request)
    answer = await auth.first_run(state, authenticated=session is not None)
    answer["sso"] = oidc.sso_info(request)   # "Sign in with <displayName>" when enabled
    return answer


@router.get("/api/sessions", dependencies=[Depends(sessions.require_session)],
            openapi_extra=requires("admin"),
            summary="Active management sessions")
async def list_sessions(state: StateDep) -> dict[str, Any]:
    return {"sessions": await sessions.list_sessions(state)}

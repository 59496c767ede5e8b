"""Password change, first-run state and the list of sessions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from omniroute.store import config_repo
from omniroute_admin import audit, passwords, sessions
from omniroute_admin.deps import admin_state

router = APIRouter(tags=["auth"])


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=passwords.MIN_LENGTH, max_length=1024)


@router.put("/api/auth/password", dependencies=[Depends(sessions.require_session)],
            summary="Change the admin password (ends every other session)")
async def change_password(body: PasswordChange, request: Request) -> dict[str, Any]:
    state = admin_state(request)
    if not await sessions.check_password(state, request, body.current_password):
        raise HTTPException(403, "The current password is wrong.")
    if body.new_password == body.current_password:
        raise HTTPException(400, "The new password must differ from the current one.")
    async with state.pool.connection() as conn, conn.transaction():
        await passwords.change(conn, body.new_password)
        await audit.record(state, request, "auth.password_changed", "admin", conn=conn)
    # Whoever else held a session logged in with the old password: they log in again.
    token, _ = sessions.presented_token(request)
    keep = sessions._session_key(state, token) if token else ""
    async for key in state.redis.scan_iter(match=f"{state.settings.env}:session:*", count=200):
        if key.decode() != keep:
            await state.redis.delete(key)
    return {"success": True}


@router.get("/api/init", summary="First-run state (no login needed)")
async def init_state(request: Request) -> dict[str, Any]:
    """What a dashboard or installer needs before logging in; reveals no configuration."""
    state = admin_state(request)
    session, _ = await sessions.current_session(request)
    async with state.pool.connection() as conn:
        providers = await config_repo.count_providers(conn)
        keys = await config_repo.count_keys(conn)
    initial = await passwords.is_initial(state.pool)
    require_login = await sessions.login_required(state)
    authenticated = session is not None or not require_login
    answer: dict[str, Any] = {"requireLogin": require_login, "authenticated": session is not None,
                              "passwordIsInitial": initial}
    if authenticated:
        answer.update({"providers": providers, "keys": keys, "firstRun": initial or not providers})
    return answer


@router.get("/api/sessions", dependencies=[Depends(sessions.require_session)],
            summary="Active management sessions")
async def list_sessions(request: Request) -> dict[str, Any]:
    return {"sessions": await sessions.list_sessions(admin_state(request))}



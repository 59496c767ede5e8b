"""Dashboard / management sessions: login with the admin password, a cookie, kept in Redis so
that every admin replica accepts it."""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response

from omniroute_admin.state import AdminState

router = APIRouter()
COOKIE = "auth_token"
SESSION_TTL_S = 7 * 24 * 3600


class Login(BaseModel):
    password: str


def _state(request: Request) -> AdminState:
    state: AdminState = request.app.state.admin
    return state


def _session_key(state: AdminState, token: str) -> str:
    return f"{state.settings.env}:session:{token}"


async def require_session(request: Request) -> None:
    """Dependency of every management route: a valid session cookie or bearer session token."""
    state = _state(request)
    token = request.cookies.get(COOKIE)
    if not token:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else ""
    if not token or not await state.redis.exists(_session_key(state, token)):
        raise HTTPException(401, "Log in first: POST /api/auth/login with the admin password.")


@router.post("/api/auth/login")
async def login(body: Login, request: Request) -> Response:
    state = _state(request)
    if not hmac.compare_digest(body.password.encode(), state.settings.initial_password.encode()):
        raise HTTPException(401, "Wrong password.")
    token = secrets.token_urlsafe(32)
    await state.redis.set(_session_key(state, token), "1", ex=SESSION_TTL_S)
    response = JSONResponse({"success": True, "token": token})
    response.set_cookie(COOKIE, token, max_age=SESSION_TTL_S, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.post("/api/auth/logout")
async def logout(request: Request) -> Response:
    state = _state(request)
    token = request.cookies.get(COOKIE)
    if token:
        await state.redis.delete(_session_key(state, token))
    response = JSONResponse({"success": True})
    response.delete_cookie(COOKIE)
    return response

"""Management sessions: login with the admin password, a cookie kept in Redis (so that every admin
replica accepts it), CSRF protection for cookie-authenticated writes, and a per-IP lockout.

Two ways to present a session:
- the `auth_token` cookie (browsers; HttpOnly, SameSite=Strict, Secure over HTTPS). A write
  (POST/PUT/PATCH/DELETE) must also send `X-CSRF-Token` equal to the session's CSRF token,
  which login returns and mirrors in the readable `csrf_token` cookie (double submit, bound to
  the session server-side so that a planted cookie does not help an attacker);
- `Authorization: Bearer <token>` (scripts): exempt from CSRF, since no browser attaches it on
  its own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from omniroute_admin import access, audit, passwords, settings_model
from omniroute_admin.deps import Caller, StateDep, admin_state
from omniroute_admin.requestctx import client_ip
from omniroute_admin.services import people, tokens
from omniroute_admin.state import AdminState

router = APIRouter(tags=["auth"])
COOKIE = "auth_token"
CSRF_COOKIE = "csrf_token"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Lockout: this many failed logins from one address within the window → 429 until it expires.
MAX_FAILURES = 5
LOCKOUT_S = 60


class Login(BaseModel):
    password: str = Field(min_length=1, max_length=1024)


def _session_key(state: AdminState, token: str) -> str:
    # The token's hash names the record: whoever reads Redis cannot replay a session from it.
    return f"{state.settings.env}:session:{hashlib.sha256(token.encode()).hexdigest()}"


def _failures_key(state: AdminState, ip: str) -> str:
    return f"{state.settings.env}:login-failures:{ip}"


def is_https(request: Request) -> bool:
    # X-Forwarded-Proto comes from the TLS terminator in front of the edge; believing it can
    # only make the cookies stricter.
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def presented_token(request: Request) -> tuple[str, str]:
    """(token, "cookie" | "bearer" | "")."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), "bearer"
    cookie = request.cookies.get(COOKIE, "")
    return (cookie, "cookie") if cookie else ("", "")


async def load_session(state: AdminState, token: str) -> dict[str, Any] | None:
    if not token:
        return None
    raw = await state.redis.get(_session_key(state, token))
    if raw is None:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


async def login_required(state: AdminState) -> bool:
    return (await _general(state)).require_login


async def _general(state: AdminState) -> settings_model.GeneralSettings:
    async with state.pool.connection() as conn:
        return await settings_model.load(conn, "general", settings_model.GeneralSettings)


def check_cross_site(request: Request) -> None:
    """Browsers label cross-site requests; refuse them for writes whatever the credentials."""
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        raise HTTPException(403, "Cross-site requests cannot change the configuration.")


async def current_session(request: Request) -> tuple[dict[str, Any] | None, str]:
    """The valid session this request presents, if any, and how it presented it."""
    token, via = presented_token(request)
    session = await load_session(admin_state(request), token)
    return session, via if session else ""


async def require_session(request: Request) -> None:
    """Dependency of every management route: who is calling (a management token, a session, or
    anyone while login is off), the route's role (access.enforce: before the body is validated,
    so a refused caller learns nothing of the route's shape), and for a cookie-authenticated
    write, the CSRF token. Tokens need no CSRF token: no browser attaches them on its own."""
    state = admin_state(request)
    unsafe = request.method.upper() in UNSAFE_METHODS
    if unsafe:
        check_cross_site(request)
    presented, via = presented_token(request)
    if via == "bearer" and tokens.is_management_token(presented):
        principal = await tokens.authenticate(state, presented)
        if principal is None:
            raise HTTPException(401, "Unknown, expired or revoked management token.")
        access.set_principal(request, principal)
        access.enforce(request, principal)
        return
    session = await load_session(state, presented)
    if session is None:
        if await login_required(state):
            raise HTTPException(401, "Log in first: POST /api/auth/login with the admin password.")
        access.set_principal(request, access.ANONYMOUS)
        return
    principal = await resolve_session(state, session)
    if principal is None:
        raise HTTPException(401, "This session's person was removed or disabled: log in again.")
    access.set_principal(request, principal)
    request.state.session = session
    access.enforce(request, principal)
    if unsafe and via == "cookie":
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not hmac.compare_digest(sent, str(session.get("csrf", ""))):
            raise HTTPException(403, "Missing or wrong X-CSRF-Token header (the csrf_token cookie's "
                                     "value, also returned by login).")


async def resolve_session(state: AdminState, session: dict[str, Any]) -> access.Principal | None:
    """The session's principal now: a person's role and teams as the people table says at this
    call (so a change or removal applies to sessions already open); others as started."""
    principal = session_principal(session)
    if principal.kind == "person" and principal.person_id:
        return await people.current_principal(state, principal.person_id)
    return principal


def session_principal(session: dict[str, Any]) -> access.Principal:
    """The principal a session was started for (sessions from before roles: the owner)."""
    held = session.get("principal")
    if not isinstance(held, dict) or held.get("role") not in access.ROLES:
        return access.OWNER_BREAK_GLASS
    return access.Principal(kind=str(held.get("kind", "person")), actor=str(held.get("actor", "")),
                            role=held["role"], team_ids=frozenset(held.get("team_ids") or ()),
                            person_id=str(held.get("person_id", "")))


async def throttle(state: AdminState, ip: str) -> None:
    """Refuse while this address is locked out (shared by every replica through Redis)."""
    key = _failures_key(state, ip)
    failures = int(await state.redis.get(key) or 0)
    if failures >= MAX_FAILURES:
        retry = max(1, int(await state.redis.ttl(key)))
        raise HTTPException(429, f"Too many failed logins; try again in {retry} s.",
                            headers={"Retry-After": str(retry)})


async def note_failure(state: AdminState, ip: str) -> None:
    key = _failures_key(state, ip)
    async with state.redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, LOCKOUT_S)  # the window restarts at each failure
        await pipe.execute()


async def start_session(state: AdminState, request: Request,
                        principal: access.Principal = access.OWNER_BREAK_GLASS) -> dict[str, Any]:
    """Create a session for `principal` (the password login: the break-glass owner); returns
    its token, CSRF token and lifetime (for set_cookies)."""
    ttl = (await _general(state)).session_ttl_hours * 3600
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    record = {"csrf": csrf, "created": time.time(), "ip": client_ip(request),
              "user_agent": request.headers.get("user-agent", "")[:200],
              "id": hashlib.sha256(token.encode()).hexdigest()[:16],
              "principal": {"kind": principal.kind, "actor": principal.actor, "role": principal.role,
                            "team_ids": sorted(principal.team_ids), "person_id": principal.person_id}}
    await state.redis.set(_session_key(state, token), orjson.dumps(record), ex=ttl)
    return {"token": token, "csrf": csrf, "ttl": ttl}


def set_cookies(request: Request, response: Response, issued: dict[str, Any]) -> None:
    secure = is_https(request)
    response.set_cookie(COOKIE, issued["token"], max_age=issued["ttl"], httponly=True,
                        samesite="strict", secure=secure, path="/")
    # Readable by the dashboard's script, which echoes it in X-CSRF-Token.
    response.set_cookie(CSRF_COOKIE, issued["csrf"], max_age=issued["ttl"], httponly=False,
                        samesite="strict", secure=secure, path="/")


async def check_password(state: AdminState, caller: Caller, password: str) -> bool:
    """Verify with lockout bookkeeping (per caller address) and an audit row for failures."""
    await throttle(state, caller.ip)
    if await passwords.verify(state.pool, password):
        await state.redis.delete(_failures_key(state, caller.ip))
        return True
    await note_failure(state, caller.ip)
    await audit.record(state, caller, "auth.login_failed", "admin")
    return False


async def end_session(state: AdminState, request: Request, response: Response) -> None:
    token, _ = presented_token(request)
    if token:
        await state.redis.delete(_session_key(state, token))
    response.delete_cookie(COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")


@router.post("/api/auth/login", summary="Log in with the admin password")
async def login(body: Login, request: Request, state: StateDep) -> Response:
    if not await check_password(state, Caller.of(request), body.password):
        raise HTTPException(401, "Wrong password.")
    issued = await start_session(state, request)
    access.set_principal(request, access.OWNER_BREAK_GLASS)
    await audit.record(state, Caller.of(request), "auth.login", "admin")
    response = JSONResponse({"success": True, "token": issued["token"], "csrfToken": issued["csrf"]})
    set_cookies(request, response, issued)
    return response


@router.post("/api/auth/logout", summary="End this session")
async def logout(request: Request, state: StateDep) -> Response:
    response = JSONResponse({"success": True})
    await end_session(state, request, response)
    return response


async def end_all_but(state: AdminState, keep_token: str) -> None:
    """End every session except the one of `keep_token` ("": every one)."""
    keep = _session_key(state, keep_token) if keep_token else ""
    async for key in state.redis.scan_iter(match=f"{state.settings.env}:session:*", count=200):
        if key.decode() != keep:
            await state.redis.delete(key)


async def list_sessions(state: AdminState) -> list[dict[str, Any]]:
    sessions: list[dict[str, Any]] = []
    async for key in state.redis.scan_iter(match=f"{state.settings.env}:session:*", count=200):
        raw = await state.redis.get(key)
        if raw is None:
            continue
        record = orjson.loads(raw)
        held = session_principal(record)
        sessions.append({"id": record.get("id", ""), "actor": held.actor, "role": held.role,
                         "ip": record.get("ip", ""),
                         "user_agent": record.get("user_agent", ""),
                         "created_at": record.get("created", 0),
                         "expires_in_s": await state.redis.ttl(key)})
    return sorted(sessions, key=lambda s: s["created_at"], reverse=True)

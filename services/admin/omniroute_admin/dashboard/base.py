"""What every dashboard page shares: the gate (a session, unless login is off), the CSRF token
of forms, the layout with its navigation and flash message, the POST → redirect → GET answers,
error messages, and the static files.

Forms carry `csrf_token` (the session's token, or the csrf cookie's while login is off); pages
are gated like the API: a session, unless login is switched off.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError
from starlette.responses import HTMLResponse, RedirectResponse, Response

from omniroute_admin import access, sessions
from omniroute_admin.dashboard import roles
from omniroute_admin.dashboard.templating import STATIC, env, render
from omniroute_admin.deps import Caller, admin_state
from omniroute_admin.services import settings

router = APIRouter(include_in_schema=False)
FLASH_COOKIE = "flash"
NAV = [("overview", "/dashboard", "Overview"), ("providers", "/dashboard/providers", "Providers"),
       ("teams", "/dashboard/teams", "Teams"), ("keys", "/dashboard/keys", "API keys"),
       ("combos", "/dashboard/combos", "Combos & aliases"),
       ("usage", "/dashboard/usage", "Usage"), ("logs", "/dashboard/logs", "Request logs"),
       ("limits", "/dashboard/limits", "Limits & breakers"), ("cache", "/dashboard/cache", "Cache"),
       ("sync", "/dashboard/sync", "Sync"), ("cli-tools", "/dashboard/cli-tools", "CLI tools"),
       ("evals", "/dashboard/evals", "Evals"), ("mcp", "/dashboard/mcp", "MCP"),
       ("settings", "/dashboard/settings", "Settings"),
       ("people", "/dashboard/people", "People"), ("tokens", "/dashboard/tokens", "Tokens"),
       ("audit", "/dashboard/audit", "Audit log")]
_STATIC_NAME = re.compile(r"^[a-z0-9_-]+\.(css|js)$")
_FAILURES = (HTTPException, ValidationError, ValueError)


async def gate(request: Request) -> Caller:
    """Who is looking: a session (a person's as the people table says now), or anyone while
    login is off; otherwise off to the login page. Then the page's or form's role (declared on
    its route like the API route it mirrors; dashboard/roles.py): a team admin opening the
    overview lands on their first page, any other refusal is a 403 page."""
    session, _ = await sessions.current_session(request)
    principal = await sessions.resolve_session(admin_state(request), session) if session is not None else None
    if session is not None and principal is not None:
        access.set_principal(request, principal)
        request.state.session = session
        _check_role(request, principal)
        return Caller.of(request)
    if await sessions.login_required(admin_state(request)):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        # Raised, not returned, so that every page is one `await gate(request)` line; the app's
        # error handler turns it into the redirect (error_page below).
        login = f"/dashboard/login?next={quote(target)}"
        raise HTTPException(303, "Log in first.", headers={"location": login})
    access.set_principal(request, access.ANONYMOUS)
    return Caller.of(request)


def _check_role(request: Request, principal: access.Principal) -> None:
    route = request.scope.get("route")
    if route is None or access.admits(principal, route, request.method):
        return
    if request.method == "GET" and request.url.path in ("/dashboard", "/dashboard/"):
        landing = roles.first_page(request, NAV)
        if landing:
            raise HTTPException(303, "Your pages.", headers={"location": landing})
    needed = access.required_role(route, request.method)
    raise HTTPException(403, f"This page or action needs the {needed} role; you are {principal.role}"
                             + (" (your teams' keys, usage and audit only)." if principal.role == "team_admin"
                                else "."))


def csrf_token(request: Request) -> str:
    session = getattr(request.state, "session", None)
    if session:
        return str(session.get("csrf", ""))
    existing = request.cookies.get(sessions.CSRF_COOKIE, "")
    if not existing:
        existing = getattr(request.state, "new_csrf", "") or secrets.token_urlsafe(32)
        request.state.new_csrf = existing
    return existing


async def posted(request: Request) -> dict[str, str]:
    """The posted form (urlencoded), without any check (the login form has no session yet)."""
    raw = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}


async def form(request: Request) -> dict[str, str]:
    """The posted form, after the cross-site and CSRF checks."""
    sessions.check_cross_site(request)
    fields = await posted(request)
    expected = csrf_token(request)
    if not expected or not secrets.compare_digest(fields.get("csrf_token", ""), expected):
        raise HTTPException(403, "The form expired or came from another site: reload the page and retry.")
    return fields


def flash(response: Response, text: str, kind: str = "ok") -> Response:
    response.set_cookie(FLASH_COOKIE, quote(f"{kind}|{text}"[:600]), max_age=30, httponly=True,
                        samesite="strict", path="/dashboard")
    return response


def back(path: str, text: str, kind: str = "ok") -> Response:
    return flash(RedirectResponse(path, status_code=303), text, kind)


async def page(request: Request, template: str, active: str, context: dict[str, Any],
               status: int = 200) -> Response:
    general = await settings.general(admin_state(request))
    shown = None
    if request.cookies.get(FLASH_COOKIE):
        kind, _, text = unquote(request.cookies[FLASH_COOKIE]).partition("|")
        shown = {"kind": "error" if kind == "error" else "ok", "text": text}
    csrf = csrf_token(request)
    principal = access.principal_of(request)
    html = env.get_template(template).render(request=request, **{
        "nav": roles.visible_nav(request, NAV), "active": active, "csrf": csrf, "flash": shown,
        "instance": general.instance_name, "authenticated": getattr(request.state, "session", None) is not None,
        "require_login": general.require_login, "principal": principal,
        "writable": principal.at_least("team_admin"), **context})
    # Forms the caller may not post are not shown (a viewer: none); the POST is refused anyway.
    response = HTMLResponse(roles.without_forbidden_forms(request, html), status_code=status)
    if shown:
        response.delete_cookie(FLASH_COOKIE, path="/dashboard")
    if getattr(request.state, "new_csrf", ""):
        response.set_cookie(sessions.CSRF_COOKIE, csrf, httponly=False, samesite="strict",
                            secure=sessions.is_https(request), path="/")
    return response


def error_text(exc: Exception) -> str:
    if isinstance(exc, HTTPException):
        return str(exc.detail)
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors())
    return str(exc)


async def attempt(action: Callable[[], Awaitable[Any]]) -> tuple[Any, str | None]:
    """(the action's result, None) or (None, the message to show): a use case refused (its
    HTTPException) or a form's input that does not validate."""
    try:
        return await action(), None
    except _FAILURES as exc:
        return None, error_text(exc)


async def button(request: Request, back_to: str, action: Callable[[Caller], Awaitable[Any]],
                 done: Callable[[Any], str]) -> Response:
    """A form that is only a button (delete, revoke, clear …): the gate, the CSRF check, the use
    case; back to `back_to` with `done(its result)` or with why it was refused."""
    caller = await gate(request)
    await form(request)
    result, error = await attempt(lambda: action(caller))
    if error:
        return back(back_to, error, "error")
    return back(back_to, done(result))


def split(text: str) -> list[str]:
    return [part.strip() for part in re.split(r"[,\n]", text or "") if part.strip()]


@router.get("/dashboard/static/{name}")
async def static(name: str) -> Response:
    if not _STATIC_NAME.match(name) or not (STATIC / name).is_file():
        raise HTTPException(404, "No such file.")
    media = "text/css" if name.endswith(".css") else "text/javascript"
    return Response((STATIC / name).read_bytes(), media_type=media,
                    headers={"cache-control": "public, max-age=3600"})


def error_page(request: Request, exc: HTTPException) -> Response:
    """HTML errors for the dashboard (the app's HTTPException handler calls this for /dashboard)."""
    if exc.status_code in (301, 302, 303, 307):
        location = (exc.headers or {}).get("location", "/dashboard")
        return RedirectResponse(location, status_code=exc.status_code)
    return render(request, "error.html", {"status": exc.status_code, "message": exc.detail, "nav": [],
                                          "instance": "OmniRoute", "flash": None, "authenticated": False},
                  status=exc.status_code)

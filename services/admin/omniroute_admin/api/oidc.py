"""Single sign-on routes (OpenID Connect, authorisation code + PKCE): /api/auth/oidc/login sends
the browser to the identity provider, /api/auth/oidc/callback comes back with a code, which
becomes a person's session. The checks are features/oidc.py; the break-glass password login
(sessions.py) is untouched.

Failures answer JSON ({"error": ...}) to API clients and an HTML page to browsers (Accept:
text/html), never a session, and always an `auth.sso_failed` audit row with the reason.
"""

from __future__ import annotations

import html
import logging
import secrets
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from omniroute.store import people_repo
from omniroute_admin import access, audit, sessions
from omniroute_admin.deps import Caller, StateDep, admin_state
from omniroute_admin.features import oidc
from omniroute_admin.services import people
from omniroute_admin.state import AdminState

router = APIRouter(tags=["auth"])
log = logging.getLogger("omniroute.admin.oidc")
# Ties a login attempt to the browser that started it. SameSite=Lax: the IdP's redirect back is
# a cross-site top-level GET, on which Lax cookies are sent (Strict ones are not).
BINDING_COOKIE = "oidc_login"
BINDING_PATH = "/api/auth/oidc"


def provider(request: Request) -> oidc.OidcProvider | None:
    return oidc.provider_for(request.app.state, admin_state(request).settings)


def sso_info(request: Request) -> dict[str, Any]:
    """What a login page needs: whether single sign-on is on, and the provider's name."""
    found = provider(request)
    if found is None:
        return {"enabled": False}
    return {"enabled": True, "displayName": found.config.display_name, "loginUrl": "/api/auth/oidc/login"}


def redirect_uri(request: Request, config: oidc.OidcConfig, public_url: str) -> str:
    """Where the IdP sends the browser back: configured, else the gateway's public URL, else the
    URL this request came in on (the edge passes its own host and scheme in X-Forwarded-*)."""
    if config.redirect_url:
        return config.redirect_url
    if public_url:
        return public_url.rstrip("/") + oidc.CALLBACK_PATH
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip() or request.url.scheme
    host = request.headers.get("x-forwarded-host", "").split(",")[0].strip() or request.url.netloc
    return f"{proto}://{host}{oidc.CALLBACK_PATH}"


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


@router.get("/api/auth/oidc/login", summary="Single sign-on: go to the identity provider (no login needed)",
            response_class=RedirectResponse, status_code=302)
async def oidc_login(request: Request, state: StateDep, next: str = "/dashboard") -> Response:
    found = provider(request)
    if found is None:
        raise HTTPException(404, "Single sign-on is not configured.")
    try:
        endpoint = str((await found.discovery())["authorization_endpoint"])
    except oidc.OidcError as exc:
        return await _refuse(request, state, exc, {})
    verifier, challenge = oidc.pkce_pair()
    login_state, nonce, binding = (secrets.token_urlsafe(32) for _ in range(3))
    back_to = redirect_uri(request, found.config, state.settings.public_url)
    attempt = oidc.LoginAttempt(nonce=nonce, verifier=verifier, redirect_uri=back_to,
                                next_path=oidc.safe_next(next), binding=binding)
    await oidc.remember_attempt(state.redis, state.settings, login_state, attempt)
    response = RedirectResponse(found.authorization_url(endpoint, redirect_uri=back_to, state=login_state,
                                                        nonce=nonce, challenge=challenge), status_code=302)
    response.set_cookie(BINDING_COOKIE, binding, max_age=oidc.LOGIN_TTL_S, httponly=True, samesite="lax",
                        secure=sessions.is_https(request), path=BINDING_PATH)
    return response


@router.get("/api/auth/oidc/callback", summary="Single sign-on: the identity provider's redirect back")
async def oidc_callback(request: Request, state: StateDep, code: str = "", error: str = "",
                        error_description: str = "") -> Response:
    found = provider(request)
    if found is None:
        raise HTTPException(404, "Single sign-on is not configured.")
    known: dict[str, Any] = {}
    try:
        attempt = await oidc.take_attempt(state.redis, state.settings, request.query_params.get("state", ""),
                                          request.cookies.get(BINDING_COOKIE, ""))
        if error:
            said = f": {error_description[:200].rstrip('.')}" if error_description else ""
            raise oidc.OidcError("idp_error", f"The identity provider said {error[:100]}{said}.", 401)
        if not code:
            raise oidc.OidcError("token_exchange", "The identity provider sent no code.", 400)
        claims = await found.validate_id_token(await found.exchange_code(code, attempt), attempt.nonce)
        known = {"subject": f"{claims['iss']}|{claims['sub']}", "email": claims.get("email")}
        groups = oidc.groups_of(claims, found.config.groups_claim)
        known["groups"] = groups
        principal = await _sign_in(state, found.config, claims, groups)
    except oidc.OidcError as exc:
        return await _refuse(request, state, exc, known)
    issued = await sessions.start_session(state, request, principal)
    access.set_principal(request, principal)
    await audit.record(state, Caller.of(request), "auth.sso_login", principal.person_id,
                       detail={"email": known["email"], "subject": known["subject"], "groups": known["groups"],
                               "role": principal.role, "team_ids": sorted(principal.team_ids)})
    response = _continue_to(attempt.next_path)
    sessions.set_cookies(request, response, issued)
    response.delete_cookie(BINDING_COOKIE, path=BINDING_PATH)
    return response


async def _sign_in(state: AdminState, config: oidc.OidcConfig, claims: dict[str, Any],
                   groups: list[str]) -> access.Principal:
    """The person behind `claims`, created or updated from their groups; their principal."""
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise oidc.OidcError("no_email", "The identity provider sent no e-mail address (ask for the email scope).", 403)
    if claims.get("email_verified") is False:
        raise oidc.OidcError("email_unverified", "The identity provider has not verified this e-mail address.", 403)
    role, team_ids = oidc.map_groups(config, groups)
    if role is None:
        raise oidc.OidcError("not_allowed", "You are not allowed to manage this gateway: none of your "
                                            "groups is mapped to a role.", 403)
    subject = f"{claims['iss']}|{claims['sub']}"
    async with state.pool.connection() as conn, conn.transaction():
        person = await people_repo.by_oidc_subject(conn, subject)
        if person is None:
            person = await people_repo.by_email(conn, email)
            if person is not None and person.oidc_subject not in (None, subject):
                raise oidc.OidcError("subject_mismatch", f"{email} is already bound to another single sign-on "
                                                         "account.", 403)
        if person is not None and not person.enabled:
            raise oidc.OidcError("disabled", "Your access to this gateway is disabled.", 403)
        if team_ids:
            known = await people_repo.known_teams(conn, list(team_ids))
            team_ids = tuple(t for t in team_ids if t in known)
        if role == "team_admin" and not team_ids:
            raise oidc.OidcError("not_allowed", "You are not allowed to manage this gateway: your groups "
                                                "name no existing team.", 403)
        name = claims.get("name") if isinstance(claims.get("name"), str) else (person.name if person else "")
        # The stored e-mail stays for a known subject: the person is the subject, not the address.
        person = await people_repo.upsert(conn, email=person.email if person else email, name=str(name or ""),
                                          role=role, team_ids=list(team_ids), source="oidc", enabled=True,
                                          oidc_subject=subject)
        await people_repo.note_login(conn, person.id)
    return people.principal_of_person(person)


def _continue_to(next_path: str) -> Response:
    """A page that moves on to `next_path` by itself. Not a redirect: this answer ends a chain of
    redirects that began at the IdP, another site, and a browser would not send our SameSite=Strict
    session cookie on a redirect of that chain; a navigation started by this page is same-site."""
    target = html.escape(oidc.safe_next(next_path), quote=True)
    body = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="refresh" content="0;url={target}"><link rel="icon" href="data:,">'
            f'<title>Signed in</title></head>'
            f'<body><p>Signed in. <a id="continue" href="{target}">Continue</a></p></body></html>')
    return HTMLResponse(body, headers={"x-omniroute-next": oidc.safe_next(next_path)})


async def _refuse(request: Request, state: AdminState, exc: oidc.OidcError, known: dict[str, Any]) -> Response:
    log.info("single sign-on refused: %s (%s)", exc.reason, exc.message)
    await audit.record(state, Caller.of(request), "auth.sso_failed", str(known.get("email") or ""),
                       detail={"reason": exc.reason, "message": exc.message,
                               **{k: v for k, v in known.items() if v is not None}})
    failure = HTTPException(exc.status, exc.message)
    if _wants_html(request):
        from omniroute_admin import dashboard  # the dashboard imports the API: late, no cycle
        response = dashboard.error_page(request, failure)
    else:
        raise failure
    response.delete_cookie(BINDING_COOKIE, path=BINDING_PATH)
    return response

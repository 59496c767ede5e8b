"""The web dashboard (/dashboard): server-rendered pages, plain HTML forms (POST + redirect), a
little script for niceties only. Every action goes through the same functions as the JSON API,
so validation, audit rows and config announcements are identical.

Forms carry `csrf_token` (the session's token, or the csrf cookie's while login is off); pages
are gated like the API: a session, unless login is switched off.
"""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import parse_qs, quote, unquote

import httpx
from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from omniroute.catalog import PROVIDER_TYPES
from omniroute.config.spec import ConnectionSpec, KeySpec, ProviderSpec
from omniroute.store import audit_repo, config_repo, usage_queries
from omniroute_admin import (
    audit,
    auth_api,
    backup_store,
    backups_api,
    catalog_api,
    dashboard_data,
    providers_api,
    routing_api,
    sessions,
    settings_api,
    settings_store,
)
from omniroute_admin.charts import bar_chart, line_chart
from omniroute_admin.deps import admin_state
from omniroute_admin.templating import STATIC, render

router = APIRouter(include_in_schema=False)
FLASH_COOKIE = "flash"
NAV = [("overview", "/dashboard", "Overview"), ("providers", "/dashboard/providers", "Providers"),
       ("keys", "/dashboard/keys", "API keys"), ("combos", "/dashboard/combos", "Combos & aliases"),
       ("usage", "/dashboard/usage", "Usage"), ("logs", "/dashboard/logs", "Request logs"),
       ("limits", "/dashboard/limits", "Limits & breakers"), ("cache", "/dashboard/cache", "Cache"),
       ("sync", "/dashboard/sync", "Sync"), ("cli-tools", "/dashboard/cli-tools", "CLI tools"),
       ("evals", "/dashboard/evals", "Evals"), ("settings", "/dashboard/settings", "Settings"),
       ("audit", "/dashboard/audit", "Audit log")]
_STATIC_NAME = re.compile(r"^[a-z0-9_-]+\.(css|js)$")


# --- gatekeeping ---------------------------------------------------------------------------------

async def _gate(request: Request) -> None:
    """Who is looking: a session, or anyone while login is off; otherwise off to the login page."""
    session, _ = await sessions.current_session(request)
    if session is not None:
        request.state.actor, request.state.session = "admin", session
        return
    if await sessions.login_required(admin_state(request)):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        # Raised, not returned, so that every page is one `await _gate(request)` line; the app's
        # error handler turns it into the redirect (error_page below).
        login = f"/dashboard/login?next={quote(target)}"
        raise HTTPException(303, "Log in first.", headers={"location": login})
    request.state.actor = "anonymous"


def _csrf_token(request: Request) -> str:
    session = getattr(request.state, "session", None)
    if session:
        return str(session.get("csrf", ""))
    existing = request.cookies.get(sessions.CSRF_COOKIE, "")
    if not existing:
        existing = getattr(request.state, "new_csrf", "") or secrets.token_urlsafe(32)
        request.state.new_csrf = existing
    return existing


async def _form(request: Request) -> dict[str, str]:
    """The posted form (urlencoded), after the cross-site and CSRF checks."""
    sessions.check_cross_site(request)
    raw = (await request.body()).decode("utf-8", errors="replace")
    form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
    expected = _csrf_token(request)
    if not expected or not secrets.compare_digest(form.get("csrf_token", ""), expected):
        raise HTTPException(403, "The form expired or came from another site: reload the page and retry.")
    return form


def _flash(response: Response, text: str, kind: str = "ok") -> Response:
    response.set_cookie(FLASH_COOKIE, quote(f"{kind}|{text}"[:600]), max_age=30, httponly=True,
                        samesite="strict", path="/dashboard")
    return response


def _back(path: str, text: str, kind: str = "ok") -> Response:
    return _flash(RedirectResponse(path, status_code=303), text, kind)


async def _page(request: Request, template: str, active: str, context: dict[str, Any],
                status: int = 200) -> Response:
    state = admin_state(request)
    async with state.pool.connection() as conn:
        general = await settings_store.load(conn, "general", settings_store.GeneralSettings)
    flash = None
    if request.cookies.get(FLASH_COOKIE):
        kind, _, text = unquote(request.cookies[FLASH_COOKIE]).partition("|")
        flash = {"kind": "error" if kind == "error" else "ok", "text": text}
    csrf = _csrf_token(request)
    response = render(request, template, {
        "nav": NAV, "active": active, "csrf": csrf, "flash": flash, "instance": general.instance_name,
        "authenticated": getattr(request.state, "session", None) is not None,
        "require_login": general.require_login, **context}, status=status)
    if flash:
        response.delete_cookie(FLASH_COOKIE, path="/dashboard")
    if getattr(request.state, "new_csrf", ""):
        response.set_cookie(sessions.CSRF_COOKIE, csrf, httponly=False, samesite="strict",
                            secure=sessions.is_https(request), path="/")
    return response


def _error_text(exc: Exception) -> str:
    if isinstance(exc, HTTPException):
        return str(exc.detail)
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors())
    return str(exc)


def _split(text: str) -> list[str]:
    return [part.strip() for part in re.split(r"[,\n]", text or "") if part.strip()]


# --- login ---------------------------------------------------------------------------------------

def _safe_next(value: str | None) -> str:
    # Only our own pages: no "//evil.example" or absolute URLs.
    if value and value.startswith("/dashboard") and not value.startswith("//"):
        return value
    return "/dashboard"


@router.get("/dashboard/login")
async def login_page(request: Request) -> Response:
    session, _ = await sessions.current_session(request)
    if session is not None or not await sessions.login_required(admin_state(request)):
        return RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
    return await _page(request, "login.html", "", {"next": _safe_next(request.query_params.get("next")),
                                                    "error": None})


@router.post("/dashboard/login")
async def login_submit(request: Request) -> Response:
    sessions.check_cross_site(request)
    raw = (await request.body()).decode("utf-8", errors="replace")
    form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
    state = admin_state(request)
    target = _safe_next(form.get("next"))
    try:
        ok = await sessions.check_password(state, request, form.get("password", ""))
    except HTTPException as exc:   # locked out
        return await _page(request, "login.html", "", {"next": target, "error": exc.detail}, status=429)
    if not ok:
        return await _page(request, "login.html", "", {"next": target, "error": "Wrong password."},
                           status=401)
    issued = await sessions.start_session(state, request)
    request.state.actor = "admin"
    await audit.record(state, request, "auth.login", "admin")
    response = RedirectResponse(target, status_code=303)
    sessions.set_cookies(request, response, issued)
    return response


@router.post("/dashboard/logout")
async def logout(request: Request) -> Response:
    await _gate(request)
    await _form(request)
    response = RedirectResponse("/dashboard/login", status_code=303)
    await sessions.end_session(admin_state(request), request, response)
    return response


# --- overview, usage, logs -----------------------------------------------------------------------

@router.get("/dashboard")
@router.get("/dashboard/")
async def overview(request: Request) -> Response:
    await _gate(request)
    chosen = dashboard_data.period(request.query_params.get("period"))
    async with admin_state(request).pool.connection() as conn:
        data = await dashboard_data.overview(conn, chosen)
        models = await dashboard_data.breakdown(conn, chosen, "model")
    series = data["series"]
    charts = {
        "requests": bar_chart("Requests", series["labels"], series["requests"], highlight=series["errors"]),
        "tokens": bar_chart("Tokens", series["labels"], series["tokens"]),
        "p95": line_chart("p95 latency", series["labels"], series["p95"], unit=" ms"),
    }
    return await _page(request, "overview.html", "overview", {
        "period": chosen.name, "periods": list(dashboard_data.PERIODS), "totals": data["totals"],
        "charts": charts, "models": models[:10]})


@router.get("/dashboard/usage")
async def usage(request: Request) -> Response:
    await _gate(request)
    chosen = dashboard_data.period(request.query_params.get("period"))
    group = request.query_params.get("group", "key")
    group = group if group in dashboard_data.GROUPS else "key"
    async with admin_state(request).pool.connection() as conn:
        rows = await dashboard_data.breakdown(conn, chosen, group)
    top = rows[:20]
    chart = bar_chart(f"Requests by {group}", [str(r["name"] or "—")[:14] for r in top],
                      [float(r["requests"]) for r in top], highlight=[float(r["errors"]) for r in top])
    return await _page(request, "usage.html", "usage", {
        "rows": rows, "group": group, "groups": list(dashboard_data.GROUPS), "period": chosen.name,
        "periods": list(dashboard_data.PERIODS), "chart": chart})


_CSV_COLUMNS = ["name", "requests", "input_tokens", "output_tokens", "cost", "errors", "p95"]


@router.get("/dashboard/usage.csv")
async def usage_csv(request: Request) -> Response:
    await _gate(request)
    chosen = dashboard_data.period(request.query_params.get("period"))
    group = request.query_params.get("group", "key")
    async with admin_state(request).pool.connection() as conn:
        rows = await dashboard_data.breakdown(conn, chosen, group)
    body = dashboard_data.to_csv(rows, _CSV_COLUMNS).replace("name", group, 1)
    return PlainTextResponse(body, media_type="text/csv", headers={
        "content-disposition": f'attachment; filename="omniroute-usage-{group}-{chosen.name}.csv"'})


@router.get("/dashboard/logs")
async def logs(request: Request) -> Response:
    await _gate(request)
    page_no = max(1, int(request.query_params.get("page", "1") or 1)) if \
        request.query_params.get("page", "1").isdigit() else 1
    errors_only = request.query_params.get("errors") == "1"
    model = request.query_params.get("model", "")[:200]
    key = request.query_params.get("key", "")[:200]
    async with admin_state(request).pool.connection() as conn:
        rows = await usage_queries.recent_requests(conn, limit=51, offset=(page_no - 1) * 50,
                                                 errors_only=errors_only, model=model, key=key)
    return await _page(request, "logs.html", "logs", {
        "rows": rows[:50], "more": len(rows) > 50, "page": page_no, "errors_only": errors_only,
        "model": model, "key": key})


# --- providers and keys --------------------------------------------------------------------------

async def _providers(request: Request) -> list[dict[str, Any]]:
    state = admin_state(request)
    async with state.pool.connection() as conn:
        return await config_repo.list_providers(conn, state.crypto)


@router.get("/dashboard/providers")
async def providers_page(request: Request) -> Response:
    await _gate(request)
    # Breakers and cooldowns as the routers keep them in Redis, read by the API's own handler.
    health = (await routing_api.get_resilience(request))["connections"]
    return await _page(request, "providers.html", "providers", {
        "providers": await _providers(request), "types": sorted(PROVIDER_TYPES), "health": health})


@router.post("/dashboard/providers/{provider_id}/test")
async def provider_test(provider_id: str, request: Request) -> Response:
    """A real minimal call through an executor (the API's test): latency, or the provider's error."""
    await _gate(request)
    form = await _form(request)
    wanted = catalog_api.TestRequest(model=form.get("model", "").strip() or None,
                                     connection=form.get("connection", "").strip() or None)
    try:
        result = await catalog_api.test_provider(provider_id, request, wanted)
    except HTTPException as exc:
        return _back("/dashboard/providers", f"Test of {provider_id}: {_error_text(exc)}", "error")
    via = f"{provider_id}/{result['connection'] or '—'} with model {result['model'] or '—'}"
    if result["ok"]:
        return _back("/dashboard/providers", f"Test of {via}: OK in {result['latencyMs']} ms.")
    error = result["error"] or {}
    return _back("/dashboard/providers", f"Test of {via} failed after {result['latencyMs']} ms: "
                                         f"{error.get('status', '')} {error.get('code', '')}: "
                                         f"{error.get('message', '')}", "error")


@router.post("/dashboard/providers")
async def provider_add(request: Request) -> Response:
    await _gate(request)
    form = await _form(request)
    try:
        connection = ConnectionSpec(name=form.get("connection_name") or "default",
                                    api_key=form.get("api_key") or None)
        spec = ProviderSpec(id=form.get("id", ""), type=form.get("type", ""),
                            base_url=form.get("base_url") or None, models=_split(form.get("models", "")),
                            connections=[connection])
        await providers_api.create_provider(spec, request)
    except (HTTPException, ValidationError) as exc:
        return _back("/dashboard/providers", f"Not added: {_error_text(exc)}", "error")
    return _back("/dashboard/providers", f"Provider {spec.id} added.")


def _spec_of(provider: dict[str, Any]) -> ProviderSpec:
    """The stored provider as a spec; credentials left out, so an update keeps them."""
    return ProviderSpec(id=provider["id"], type=provider["type"], base_url=provider["base_url"],
                        models=provider["models"] or [], enabled=provider["enabled"],
                        settings=provider["settings"] or {},
                        connections=[ConnectionSpec(name=c["name"], priority=c["priority"],
                                                    enabled=c["enabled"], settings=c["settings"] or {})
                                     for c in provider["connections"]])


async def _update_provider(request: Request, provider_id: str, change: Any) -> Response:
    found = [p for p in await _providers(request) if p["id"] == provider_id]
    if not found:
        return _back("/dashboard/providers", f"No provider {provider_id}.", "error")
    spec = _spec_of(found[0])
    message = change(spec)
    try:
        await providers_api.update_provider(provider_id, spec, request)
    except HTTPException as exc:
        return _back("/dashboard/providers", _error_text(exc), "error")
    return _back("/dashboard/providers", message)


@router.post("/dashboard/providers/{provider_id}/toggle")
async def provider_toggle(provider_id: str, request: Request) -> Response:
    await _gate(request)
    await _form(request)

    def flip(spec: ProviderSpec) -> str:
        spec.enabled = not spec.enabled
        return f"Provider {spec.id} {'enabled' if spec.enabled else 'disabled'}."
    return await _update_provider(request, provider_id, flip)


@router.post("/dashboard/providers/{provider_id}/connections/{name}/toggle")
async def connection_toggle(provider_id: str, name: str, request: Request) -> Response:
    await _gate(request)
    await _form(request)

    def flip(spec: ProviderSpec) -> str:
        for connection in spec.connections:
            if connection.name == name:
                connection.enabled = not connection.enabled
                return f"Connection {provider_id}/{name} {'enabled' if connection.enabled else 'disabled'}."
        return f"No connection {name}."
    return await _update_provider(request, provider_id, flip)


@router.post("/dashboard/providers/{provider_id}/delete")
async def provider_delete(provider_id: str, request: Request) -> Response:
    await _gate(request)
    await _form(request)
    try:
        await providers_api.delete_provider(provider_id, request)
    except HTTPException as exc:
        return _back("/dashboard/providers", _error_text(exc), "error")
    return _back("/dashboard/providers", f"Provider {provider_id} deleted.")


async def _keys_page(request: Request, new_key: dict[str, Any] | None = None, status: int = 200) -> Response:
    async with admin_state(request).pool.connection() as conn:
        keys = await config_repo.list_keys(conn)
    return await _page(request, "keys.html", "keys", {"keys": keys, "new_key": new_key}, status=status)


@router.get("/dashboard/keys")
async def keys_page(request: Request) -> Response:
    await _gate(request)
    return await _keys_page(request)


@router.post("/dashboard/keys")
async def key_create(request: Request) -> Response:
    await _gate(request)
    form = await _form(request)
    try:
        budget = float(form["budget"]) if form.get("budget") else None
        spec = KeySpec.model_validate({
            "name": form.get("name", ""), "allowed_models": _split(form.get("allowed_models", "")) or None,
            "expires_at": form.get("expires_at") or None,
            "budget": {"limit": budget, "period": form.get("budget_period") or "monthly"}
            if budget is not None else None})
        created = await providers_api.create_key(spec, request)
    except (HTTPException, ValidationError, ValueError) as exc:
        return _back("/dashboard/keys", f"Not created: {_error_text(exc)}", "error")
    # Rendered directly (no redirect): the clear key exists only in this answer.
    return await _keys_page(request, new_key=created, status=201)


@router.post("/dashboard/keys/{key_id}/revoke")
async def key_revoke(key_id: str, request: Request) -> Response:
    await _gate(request)
    await _form(request)
    try:
        await providers_api.delete_key(key_id, request)
    except HTTPException as exc:
        return _back("/dashboard/keys", _error_text(exc), "error")
    return _back("/dashboard/keys", "Key revoked.")


# --- settings, backups, audit --------------------------------------------------------------------

@router.get("/dashboard/settings")
async def settings_page(request: Request) -> Response:
    await _gate(request)
    state = admin_state(request)
    async with state.pool.connection() as conn:
        general = await settings_store.load(conn, "general", settings_store.GeneralSettings)
        ip_filter = await settings_store.load(conn, "ip_filter", settings_store.IpFilterSettings)
        proxy = settings_store.shown_proxies(await settings_store.load_raw(conn, "proxy"))
    return await _page(request, "settings.html", "settings", {
        "general": general, "ip_filter": ip_filter, "proxy": proxy,
        "backups": backup_store.listing(state.settings.backup_dir)})


async def _settings_action(request: Request, action: Any, done: str) -> Response:
    try:
        await action()
    except (HTTPException, ValidationError, ValueError) as exc:
        return _back("/dashboard/settings", _error_text(exc), "error")
    return _back("/dashboard/settings", done)


@router.post("/dashboard/settings/general")
async def settings_general(request: Request) -> Response:
    await _gate(request)
    form = await _form(request)
    body = {"instance_name": form.get("instance_name", ""),
            "require_login": form.get("require_login") == "on",
            "session_ttl_hours": form.get("session_ttl_hours"),
            "audit_retention_days": form.get("audit_retention_days"),
            "backup_interval_hours": form.get("backup_interval_hours"),
            "backup_keep": form.get("backup_keep"),
            "detailed_logging": form.get("detailed_logging") == "on"}
    return await _settings_action(request, lambda: settings_api.put_general(body, request), "Settings saved.")


@router.post("/dashboard/settings/password")
async def settings_password(request: Request) -> Response:
    await _gate(request)
    form = await _form(request)
    if form.get("new_password") != form.get("confirm_password"):
        return _back("/dashboard/settings", "The two new passwords differ.", "error")

    async def change() -> None:
        await auth_api.change_password(auth_api.PasswordChange(
            current_password=form.get("current_password", ""), new_password=form.get("new_password", "")),
            request)
    return await _settings_action(request, change, "Password changed; other sessions were ended.")


@router.post("/dashboard/settings/ip-filter")
async def settings_ip_filter(request: Request) -> Response:
    await _gate(request)
    form = await _form(request)

    async def save() -> None:
        body = settings_store.IpFilterSettings(
            enabled=form.get("enabled") == "on", allowlist=_split(form.get("allowlist", "")),
            blocklist=_split(form.get("blocklist", "")),
            trusted_proxy_header=form.get("trusted_proxy_header", ""),
            trusted_proxies=_split(form.get("trusted_proxies", "")),
            apply_to_api=form.get("apply_to_api") == "on",
            apply_to_dashboard=form.get("apply_to_dashboard") == "on")
        await settings_api.put_ip_filter(body, request, force=False)
    return await _settings_action(request, save, "IP filter saved.")


@router.post("/dashboard/settings/proxy")
async def settings_proxy(request: Request) -> Response:
    await _gate(request)
    form = await _form(request)

    async def save() -> None:
        state = admin_state(request)
        async with state.pool.connection() as conn:
            current = settings_store.shown_proxies(await settings_store.load_raw(conn, "proxy"))
        url = form.get("global_url", "").strip()
        current["global"] = {"url": url, "enabled": form.get("global_enabled") == "on"} if url else None
        await settings_api.put_proxy(settings_store.ProxySettings.model_validate(current), request)
    return await _settings_action(request, save, "Proxy saved.")


@router.post("/dashboard/backups")
async def backup_create(request: Request) -> Response:
    await _gate(request)
    await _form(request)
    return await _settings_action(request, lambda: backups_api.create_backup(request), "Backup taken.")


@router.post("/dashboard/backups/restore")
async def backup_restore(request: Request) -> Response:
    await _gate(request)
    form = await _form(request)
    wanted = backups_api.RestoreRequest(id=form.get("id", "") or "-")
    return await _settings_action(request, lambda: backups_api.restore_backup(wanted, request),
                                  f"Backup {wanted.id} restored.")


@router.get("/dashboard/audit")
async def audit_page(request: Request) -> Response:
    await _gate(request)
    action = request.query_params.get("action", "")[:100]
    page_text = request.query_params.get("page", "1")
    page_no = max(1, int(page_text)) if page_text.isdigit() else 1
    async with admin_state(request).pool.connection() as conn:
        entries, total = await audit_repo.query(conn, limit=50, offset=(page_no - 1) * 50, action=action or None,
                                           actor_name=None, target=None, since=None, until=None)
    return await _page(request, "audit.html", "audit", {
        "entries": entries, "total": total, "page": page_no, "action": action,
        "more": page_no * 50 < total})


# --- routing & limits: whatever the routing and usage APIs offer ---------------------------------

_SECTIONS = [("Combos", "/api/combos"), ("Model aliases", "/api/models/alias"),
             ("Rate limits (per account)", "/api/rate-limits"), ("Resilience", "/api/resilience"),
             ("Cache", "/api/cache"), ("Pricing", "/api/pricing")]


@router.get("/dashboard/routing")
async def routing_page(request: Request) -> Response:
    """Read-only views of endpoints other modules own: rendered when they exist, in-process with
    this caller's own credentials (so the same authorisation applies)."""
    await _gate(request)
    paths = {getattr(route, "path", "") for route in request.app.routes}
    sections = []
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin.internal", timeout=10) as client:
        for title, path in _SECTIONS:
            if path not in paths:
                sections.append({"title": title, "path": path, "available": False, "data": None})
                continue
            answer = await client.get(path, headers={k: v for k, v in request.headers.items()
                                                     if k in ("cookie", "authorization")})
            data = answer.json() if answer.headers.get("content-type", "").startswith("application/json") \
                else answer.text
            sections.append({"title": title, "path": path, "available": answer.status_code == 200,
                             "data": data, "status": answer.status_code})
    return await _page(request, "routing.html", "routing", {"sections": sections})


# --- static files --------------------------------------------------------------------------------

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

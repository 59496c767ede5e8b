"""The dashboard's main pages: login, overview, usage, request logs, providers, API keys,
settings and backups, the audit log and the routing overview. Every action calls the same use
case as the JSON API (services/), so validation, audit rows and config announcements are
identical."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from omniroute.catalog import PROVIDER_TYPES
from omniroute.config.spec import ConnectionSpec, ProviderSpec
from omniroute.store import audit_repo, usage_queries
from omniroute_admin import access, audit, sessions
from omniroute_admin.access import TEAM_SCOPED_READ, requires
from omniroute_admin.api.auth import PasswordChange
from omniroute_admin.api.oidc import sso_info
from omniroute_admin.api.usage import get_budgets
from omniroute_admin.dashboard import data
from omniroute_admin.dashboard.base import back, button, error_text, form, gate, page, posted, split
from omniroute_admin.dashboard.charts import bar_chart, line_chart
from omniroute_admin.deps import Caller, admin_state
from omniroute_admin.services import auth, backups, catalog, providers, routing, settings, usage
from omniroute_admin.settings_model import IpFilterSettings

router = APIRouter(include_in_schema=False)


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
    return await page(request, "login.html", "", {"sso": sso_info(request),
                                                  "next": _safe_next(request.query_params.get("next")),
                                                  "error": None})


@router.post("/dashboard/login")
async def login_submit(request: Request) -> Response:
    sessions.check_cross_site(request)
    fields = await posted(request)
    state = admin_state(request)
    target = _safe_next(fields.get("next"))
    try:
        ok = await sessions.check_password(state, Caller.of(request), fields.get("password", ""))
    except HTTPException as exc:   # locked out
        return await page(request, "login.html", "", {"sso": sso_info(request), "next": target,
                                                      "error": exc.detail}, status=429)
    if not ok:
        return await page(request, "login.html", "", {"sso": sso_info(request), "next": target,
                                                      "error": "Wrong password."},
                          status=401)
    issued = await sessions.start_session(state, request)
    access.set_principal(request, access.OWNER_BREAK_GLASS)
    await audit.record(state, Caller.of(request), "auth.login", "admin")
    response = RedirectResponse(target, status_code=303)
    sessions.set_cookies(request, response, issued)
    return response


@router.post("/dashboard/logout")
async def logout(request: Request) -> Response:
    await gate(request)
    await form(request)
    response = RedirectResponse("/dashboard/login", status_code=303)
    await sessions.end_session(admin_state(request), request, response)
    return response


# --- overview, usage, logs -----------------------------------------------------------------------

@router.get("/dashboard")
@router.get("/dashboard/")
async def overview(request: Request) -> Response:
    await gate(request)
    chosen = data.period(request.query_params.get("period"))
    async with admin_state(request).pool.connection() as conn:
        shown = await data.overview(conn, chosen)
        models = await data.breakdown(conn, chosen, "model")
    series = shown["series"]
    charts = {
        "requests": bar_chart("Requests", series["labels"], series["requests"], highlight=series["errors"]),
        "tokens": bar_chart("Tokens", series["labels"], series["tokens"]),
        "p95": line_chart("p95 latency", series["labels"], series["p95"], unit=" ms"),
    }
    return await page(request, "overview.html", "overview", {
        "period": chosen.name, "periods": list(data.PERIODS), "totals": shown["totals"],
        "charts": charts, "models": models[:10]})


@router.get("/dashboard/usage", openapi_extra=TEAM_SCOPED_READ)
async def usage_page(request: Request) -> Response:
    caller = await gate(request)
    chosen = data.period(request.query_params.get("period"))
    group = request.query_params.get("group", "key")
    group = group if group in data.GROUPS else "key"
    state = admin_state(request)
    scope = caller.principal.team_scope   # a team admin: their teams' rows only
    async with state.pool.connection() as conn:
        rows = await data.breakdown(conn, chosen, group, scope)
        by_team = rows if group == "team" else await data.breakdown(conn, chosen, "team", scope)
    top = rows[:20]
    chart = bar_chart(f"Requests by {group}", [str(r["name"] or "—")[:14] for r in top],
                      [float(r["requests"]) for r in top], highlight=[float(r["errors"]) for r in top])
    # Each key's budget as GET /api/usage/budget shows it: spend and what is left this period.
    budgets = (await get_budgets(state, caller, None, None))["budgets"]
    return await page(request, "usage.html", "usage", {
        "rows": rows, "group": group, "groups": list(data.GROUPS), "period": chosen.name,
        "periods": list(data.PERIODS), "chart": chart, "budgets": budgets, "by_team": by_team})


_CSV_COLUMNS = ["name", "requests", "input_tokens", "output_tokens", "cost", "errors", "p95"]


@router.get("/dashboard/usage.csv", openapi_extra=TEAM_SCOPED_READ)
async def usage_csv(request: Request) -> Response:
    caller = await gate(request)
    chosen = data.period(request.query_params.get("period"))
    group = request.query_params.get("group", "key")
    async with admin_state(request).pool.connection() as conn:
        rows = await data.breakdown(conn, chosen, group, caller.principal.team_scope)
    body = data.to_csv(rows, _CSV_COLUMNS).replace("name", group, 1)
    return PlainTextResponse(body, media_type="text/csv", headers={
        "content-disposition": f'attachment; filename="omniroute-usage-{group}-{chosen.name}.csv"'})


@router.get("/dashboard/logs", openapi_extra=TEAM_SCOPED_READ)
async def logs(request: Request) -> Response:
    caller = await gate(request)
    page_no = max(1, int(request.query_params.get("page", "1") or 1)) if \
        request.query_params.get("page", "1").isdigit() else 1
    errors_only = request.query_params.get("errors") == "1"
    model = request.query_params.get("model", "")[:200]
    key = request.query_params.get("key", "")[:200]
    team = request.query_params.get("team", "")[:64]
    async with admin_state(request).pool.connection() as conn:
        rows = await usage_queries.recent_requests(conn, limit=51, offset=(page_no - 1) * 50,
                                                   errors_only=errors_only, model=model, key=key, team=team,
                                                   within_teams=caller.principal.team_scope)
    return await page(request, "logs.html", "logs", {
        "rows": rows[:50], "more": len(rows) > 50, "page": page_no, "errors_only": errors_only,
        "model": model, "key": key, "team": team})


# --- providers and keys --------------------------------------------------------------------------

@router.get("/dashboard/providers")
async def providers_page(request: Request) -> Response:
    await gate(request)
    state = admin_state(request)
    # Breakers and cooldowns as the routers keep them in Redis.
    health = (await routing.resilience(state))["connections"]
    return await page(request, "providers.html", "providers", {
        "providers": await providers.list_providers(state), "types": sorted(PROVIDER_TYPES), "health": health})


@router.post("/dashboard/providers/{provider_id}/test")
async def provider_test(provider_id: str, request: Request) -> Response:
    """A real minimal call through an executor (the API's test): latency, or the provider's error."""
    caller = await gate(request)
    fields = await form(request)
    try:
        result = await catalog.test_provider(admin_state(request), caller, provider_id,
                                             fields.get("model", "").strip() or None,
                                             fields.get("connection", "").strip() or None)
    except HTTPException as exc:
        return back("/dashboard/providers", f"Test of {provider_id}: {error_text(exc)}", "error")
    via = f"{provider_id}/{result['connection'] or '—'} with model {result['model'] or '—'}"
    if result["ok"]:
        return back("/dashboard/providers", f"Test of {via}: OK in {result['latencyMs']} ms.")
    error = result["error"] or {}
    return back("/dashboard/providers", f"Test of {via} failed after {result['latencyMs']} ms: "
                                        f"{error.get('status', '')} {error.get('code', '')}: "
                                        f"{error.get('message', '')}", "error")


@router.post("/dashboard/providers")
async def provider_add(request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)
    try:
        connection = ConnectionSpec(name=fields.get("connection_name") or "default",
                                    api_key=fields.get("api_key") or None)
        spec = ProviderSpec(id=fields.get("id", ""), type=fields.get("type", ""),
                            base_url=fields.get("base_url") or None, models=split(fields.get("models", "")),
                            connections=[connection])
        await providers.create_provider(admin_state(request), caller, spec)
    except (HTTPException, ValidationError) as exc:
        return back("/dashboard/providers", f"Not added: {error_text(exc)}", "error")
    return back("/dashboard/providers", f"Provider {spec.id} added.")


async def _change_provider(request: Request, provider_id: str, change: Any) -> Response:
    return await button(request, "/dashboard/providers",
                        lambda caller: providers.change_provider(admin_state(request), caller, provider_id, change),
                        str)


@router.post("/dashboard/providers/{provider_id}/toggle")
async def provider_toggle(provider_id: str, request: Request) -> Response:
    def flip(spec: ProviderSpec) -> str:
        spec.enabled = not spec.enabled
        return f"Provider {spec.id} {'enabled' if spec.enabled else 'disabled'}."
    return await _change_provider(request, provider_id, flip)


@router.post("/dashboard/providers/{provider_id}/connections/{name}/toggle")
async def connection_toggle(provider_id: str, name: str, request: Request) -> Response:
    def flip(spec: ProviderSpec) -> str:
        for connection in spec.connections:
            if connection.name == name:
                connection.enabled = not connection.enabled
                return f"Connection {provider_id}/{name} {'enabled' if connection.enabled else 'disabled'}."
        return f"No connection {name}."
    return await _change_provider(request, provider_id, flip)


@router.post("/dashboard/providers/{provider_id}/delete")
async def provider_delete(provider_id: str, request: Request) -> Response:
    return await button(request, "/dashboard/providers",
                        lambda caller: providers.delete_provider(admin_state(request), caller, provider_id),
                        lambda _: f"Provider {provider_id} deleted.")


# --- settings, backups, audit --------------------------------------------------------------------

@router.get("/dashboard/settings")
async def settings_page(request: Request) -> Response:
    await gate(request)
    state = admin_state(request)
    return await page(request, "settings.html", "settings", {
        "general": await settings.general(state), "ip_filter": await settings.ip_filter(state),
        "proxy": await settings.proxies(state), "backups": await backups.list_backups(state)})


async def _settings_action(action: Any, done: str) -> Response:
    try:
        await action()
    except (HTTPException, ValidationError, ValueError) as exc:
        return back("/dashboard/settings", error_text(exc), "error")
    return back("/dashboard/settings", done)


@router.post("/dashboard/settings/general")
async def settings_general(request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)
    changes = {"instance_name": fields.get("instance_name", ""),
               "require_login": fields.get("require_login") == "on",
               "session_ttl_hours": fields.get("session_ttl_hours"),
               "audit_retention_days": fields.get("audit_retention_days"),
               "backup_interval_hours": fields.get("backup_interval_hours"),
               "backup_keep": fields.get("backup_keep"),
               "detailed_logging": fields.get("detailed_logging") == "on"}
    return await _settings_action(lambda: settings.change_general(admin_state(request), caller, changes),
                                  "Settings saved.")


@router.post("/dashboard/settings/password", openapi_extra=requires("owner"))
async def settings_password(request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)
    if fields.get("new_password") != fields.get("confirm_password"):
        return back("/dashboard/settings", "The two new passwords differ.", "error")

    async def change() -> None:
        wanted = PasswordChange(current_password=fields.get("current_password", ""),
                                new_password=fields.get("new_password", ""))
        token, _ = sessions.presented_token(request)
        await auth.change_password(admin_state(request), caller, wanted.current_password,
                                   wanted.new_password, keep_token=token)
    return await _settings_action(change, "Password changed; other sessions were ended.")


@router.post("/dashboard/settings/ip-filter")
async def settings_ip_filter(request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)

    async def save() -> None:
        value = IpFilterSettings(
            enabled=fields.get("enabled") == "on", allowlist=split(fields.get("allowlist", "")),
            blocklist=split(fields.get("blocklist", "")),
            trusted_proxy_header=fields.get("trusted_proxy_header", ""),
            trusted_proxies=split(fields.get("trusted_proxies", "")),
            apply_to_api=fields.get("apply_to_api") == "on",
            apply_to_dashboard=fields.get("apply_to_dashboard") == "on")
        await settings.set_ip_filter(admin_state(request), caller, value, force=False)
    return await _settings_action(save, "IP filter saved.")


@router.post("/dashboard/settings/proxy")
async def settings_proxy(request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)
    return await _settings_action(
        lambda: settings.set_global_proxy(admin_state(request), caller, fields.get("global_url", "").strip(),
                                          fields.get("global_enabled") == "on"), "Proxy saved.")


@router.post("/dashboard/backups")
async def backup_create(request: Request) -> Response:
    caller = await gate(request)
    await form(request)
    return await _settings_action(lambda: backups.create_backup(admin_state(request), caller), "Backup taken.")


@router.post("/dashboard/backups/restore", openapi_extra=requires("owner"))
async def backup_restore(request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)
    wanted = fields.get("id", "") or "-"
    return await _settings_action(lambda: backups.restore_backup(admin_state(request), caller, wanted),
                                  f"Backup {wanted} restored.")


@router.get("/dashboard/audit", openapi_extra=TEAM_SCOPED_READ)
async def audit_page(request: Request) -> Response:
    caller = await gate(request)
    scope = caller.principal.team_scope   # a team admin: rows about their teams only
    action = request.query_params.get("action", "")[:100]
    actor = request.query_params.get("actor", "")[:200]
    team = request.query_params.get("team", "")[:100]
    page_text = request.query_params.get("page", "1")
    page_no = max(1, int(page_text)) if page_text.isdigit() else 1
    async with admin_state(request).pool.connection() as conn:
        entries, total = await audit_repo.query(conn, limit=50, offset=(page_no - 1) * 50,
                                                action=action or None, actor_name=actor or None, target=None,
                                                since=None, until=None, team_id=team or None,
                                                within_teams=frozenset(scope) if scope is not None else None)
    return await page(request, "audit.html", "audit", {
        "entries": entries, "total": total, "page": page_no, "action": action, "actor": actor, "team": team,
        "more": page_no * 50 < total})


# --- routing & limits: read-only views of what the routing and usage APIs offer -----------------

@router.get("/dashboard/routing")
async def routing_page(request: Request) -> Response:
    await gate(request)
    state = admin_state(request)
    views: list[tuple[str, str, Any]] = [
        ("Combos", "/api/combos", lambda: _combos(state)),
        ("Model aliases", "/api/models/alias", lambda: _aliases(state)),
        ("Rate limits (per account)", "/api/rate-limits", lambda: routing.rate_limits(state)),
        ("Resilience", "/api/resilience", lambda: routing.resilience(state)),
        ("Cache", "/api/cache", lambda: routing.cache_stats(state)),
        ("Pricing", "/api/pricing", lambda: usage.pricing(state, None, None))]
    sections = [{"title": title, "path": path, "available": True, "data": await read(), "status": 200}
                for title, path, read in views]
    return await page(request, "routing.html", "routing", {"sections": sections})


async def _combos(state: Any) -> dict[str, Any]:
    return {"combos": [c.model_dump(mode="json") for c in await routing.list_combos(state)]}


async def _aliases(state: Any) -> dict[str, Any]:
    return {"aliases": await routing.list_aliases(state)}

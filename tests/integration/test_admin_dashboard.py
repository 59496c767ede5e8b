"""The dashboard's pages and forms in-process (the browser test is tests/e2e/test_dashboard.py),
the OpenAPI document and the offline docs page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.integration.admin_app import PASSWORD, Admin, running_admin


@pytest.fixture(scope="module")
async def admin(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Admin]:
    async with running_admin(tmp_path_factory.mktemp("admin")) as running:
        yield running


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


async def _browser(admin: Admin) -> httpx.AsyncClient:
    """Logged in through the login form, like a person."""
    client = admin.anonymous()
    page = await client.get("/dashboard/keys")
    assert page.status_code == 303 and page.headers["location"] == "/dashboard/login?next=/dashboard/keys"
    form = await client.get(page.headers["location"])
    assert form.status_code == 200 and 'label for="password"' in form.text
    assert "script-src 'self'" in form.headers["content-security-policy"]
    done = await client.post("/dashboard/login", data={
        "password": PASSWORD, "next": "/dashboard/keys", "csrf_token": _csrf(form)})
    assert done.status_code == 303 and done.headers["location"] == "/dashboard/keys"
    return client


async def test_login_form_errors_and_open_redirects(admin: Admin) -> None:
    async with admin.anonymous("198.51.100.40") as client:
        wrong = await client.post("/dashboard/login", data={"password": "nope", "next": "//evil.example"})
        assert wrong.status_code == 401 and "Wrong password." in wrong.text and 'role="alert"' in wrong.text
        ok = await client.post("/dashboard/login", data={"password": PASSWORD, "next": "//evil.example"})
        assert ok.status_code == 303 and ok.headers["location"] == "/dashboard"


async def test_pages_render_for_a_logged_in_admin(admin: Admin) -> None:
    async with admin.app.state.admin.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO usage (request_id, key_id, provider, model, status, input_tokens, output_tokens, "
            "latency_ms, started_at) VALUES ('req-dash-1', 'kx', 'prov', '=cmd()', 200, 5, 7, 80, now()),"
            "('req-dash-2', 'kx', 'prov', 'm2', 500, 1, 0, 300, now() - interval '2 hours')")
    client = await _browser(admin)
    for path, expected in [("/dashboard", "Top models"), ("/dashboard?period=7d", "last 7d"),
                           ("/dashboard/providers", "Add a provider"), ("/dashboard/keys", "Create a key"),
                           ("/dashboard/usage?group=model", "m2"),
                           ("/dashboard/logs?errors=1", "req-dash-2"), ("/dashboard/settings", "IP filter"),
                           ("/dashboard/audit", "auth.login"), ("/dashboard/routing", "Combos"),
                           ("/dashboard/docs", "/api/openapi.json")]:
        page = await client.get(path)
        assert page.status_code == 200, (path, page.text[:300])
        assert expected in page.text, path
        assert page.headers["x-frame-options"] == "DENY"
    overview = await client.get("/dashboard")
    assert "<svg" in overview.text and 'role="img"' in overview.text
    assert 'aria-current="page"' in overview.text
    logs = (await client.get("/dashboard/logs?errors=1")).text
    assert "req-dash-1" not in logs
    csv = await client.get("/dashboard/usage.csv?group=model&period=24h")
    assert csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv.headers["content-disposition"]
    assert csv.text.splitlines()[0].startswith("model,requests") and "'=cmd()" in csv.text   # no formulas
    assert (await client.get("/dashboard/static/app.css")).status_code == 200
    assert (await client.get("/dashboard/static/..%2Fapp.py")).status_code == 404
    await client.aclose()


async def test_forms_add_a_provider_create_and_revoke_a_key_with_csrf(admin: Admin) -> None:
    client = await _browser(admin)
    page = await client.get("/dashboard/providers")
    token = _csrf(page)
    forged = await client.post("/dashboard/providers",
                               data={"csrf_token": "forged", "id": "x", "type": "openai"})
    assert forged.status_code == 403 and "form expired" in forged.text
    added = await client.post("/dashboard/providers", data={
        "csrf_token": token, "id": "dashprov", "type": "openai", "base_url": "http://127.0.0.1:9/v1",
        "models": "gpt-4o, gpt-4o-mini", "connection_name": "main", "api_key": "sk-dash-secret-123456"})
    assert added.status_code == 303
    listing = await client.get("/dashboard/providers")
    assert "Provider dashprov added." in listing.text and "gpt-4o-mini" in listing.text
    assert "sk-dash-secret-123456" not in listing.text
    bad = await client.post("/dashboard/providers",
                            data={"csrf_token": token, "id": "bad id!", "type": "openai"})
    assert "Not added" in (await client.get(bad.headers["location"])).text
    toggled = await client.post("/dashboard/providers/dashprov/connections/main/toggle",
                                data={"csrf_token": token})
    assert toggled.status_code == 303
    provider = (await admin.client.get("/api/providers/dashprov")).json()
    assert provider["connections"][0]["enabled"] is False
    assert provider["connections"][0]["api_key"] == "sk-d…3456"   # the credential survived the toggle
    await client.post("/dashboard/providers/dashprov/toggle", data={"csrf_token": token})
    assert (await admin.client.get("/api/providers/dashprov")).json()["enabled"] is False

    created = await client.post("/dashboard/keys", data={"csrf_token": token, "name": "dash-key",
                                                         "budget": "12.5", "budget_period": "weekly"})
    assert created.status_code == 201
    key = re.search(r'id="new-key-value" class="secret">([^<]+)<', created.text)
    assert key and key.group(1).startswith("sk-omni-")
    assert key.group(1) not in (await client.get("/dashboard/keys")).text   # shown once
    listed = (await admin.client.get("/api/keys")).json()["keys"]
    made = next(k for k in listed if k["name"] == "dash-key")
    assert made["budget"] == {"limit": 12.5, "period": "weekly"}
    revoked = await client.post(f"/dashboard/keys/{made['id']}/revoke", data={"csrf_token": token})
    assert revoked.status_code == 303
    assert all(k["name"] != "dash-key" for k in (await admin.client.get("/api/keys")).json()["keys"])
    audit = (await admin.client.get("/api/compliance/audit-log", params={"action": "keys.*"})).json()
    assert [e["action"] for e in audit["entries"][:2]] == ["keys.delete", "keys.create"]
    await client.aclose()


async def test_settings_forms_and_backups_from_the_dashboard(admin: Admin) -> None:
    client = await _browser(admin)
    token = _csrf(await client.get("/dashboard/settings"))
    saved = await client.post("/dashboard/settings/general", data={
        "csrf_token": token, "instance_name": "Dash Co", "require_login": "on", "session_ttl_hours": "24",
        "audit_retention_days": "30", "backup_interval_hours": "0", "backup_keep": "3"})
    assert saved.status_code == 303
    page = await client.get("/dashboard/settings")
    assert "Settings saved." in page.text and "Dash Co" in page.text
    wrong = await client.post("/dashboard/settings/general", data={
        "csrf_token": token, "instance_name": "Dash Co", "backup_keep": "0"})
    assert "backup_keep" in (await client.get(wrong.headers["location"])).text
    lockout = await client.post("/dashboard/settings/ip-filter", data={
        "csrf_token": token, "enabled": "on", "allowlist": "10.0.0.0/8", "apply_to_dashboard": "on"})
    assert "lock you out" in (await client.get(lockout.headers["location"])).text
    await client.post("/dashboard/settings/proxy", data={"csrf_token": token, "global_url": "socks5://u:p@10.0.0.2:1080",
                                                         "global_enabled": "on"})
    assert (await admin.client.get("/api/settings/proxy")).json()["global"]["url"] == "socks5://u:…@10.0.0.2:1080"
    taken = await client.post("/dashboard/backups", data={"csrf_token": token})
    assert taken.status_code == 303
    backup_id = (await admin.client.get("/api/db-backups")).json()["backups"][0]["id"]
    restored = await client.post("/dashboard/backups/restore", data={"csrf_token": token, "id": backup_id})
    assert f"Backup {backup_id} restored." in (await client.get(restored.headers["location"])).text
    mismatch = await client.post("/dashboard/settings/password", data={
        "csrf_token": token, "current_password": PASSWORD, "new_password": "abcdefgh1",
        "confirm_password": "x"})
    assert "differ" in (await client.get(mismatch.headers["location"])).text
    out = await client.post("/dashboard/logout", data={"csrf_token": token})
    assert out.status_code == 303 and (await client.get("/dashboard")).status_code == 303
    await client.aclose()


async def test_openapi_document_and_docs_page(admin: Admin) -> None:
    spec = (await admin.client.get("/api/openapi.json")).json()
    for path in ["/api/auth/login", "/api/auth/password", "/api/settings", "/api/settings/ip-filter",
                 "/api/settings/proxy/test", "/api/compliance/audit-log", "/api/db-backups",
                 "/api/db-backups/export", "/api/db-backups/import", "/api/init", "/api/providers"]:
        assert path in spec["paths"], path
    assert not any(p.startswith("/dashboard") for p in spec["paths"])
    docs = await admin.client.get("/docs")
    assert docs.status_code == 200 and "/dashboard/static/docs.js" in docs.text
    assert "cdn" not in docs.text.lower()
    assert (await admin.client.get("/dashboard/static/docs.js")).status_code == 200

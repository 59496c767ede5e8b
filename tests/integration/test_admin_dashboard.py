"""The dashboard's pages and forms in-process (the browser test is tests/e2e/test_dashboard.py),
the OpenAPI document and the offline docs page."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from omniroute.shared_state import budget
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


async def test_the_usage_page_shows_each_budget_spent_and_remaining(admin: Admin) -> None:
    key_id = (await admin.client.post("/api/keys", json={"name": "dash-budget"})).json()["id"]
    answer = await admin.client.post("/api/usage/budget", json={
        "keyId": key_id, "limit": 2.0, "period": "monthly", "alertAt": [0.5, 0.9]})
    assert answer.status_code == 200, answer.text
    state = admin.app.state.admin
    await budget.record_spend(state.redis, admin.settings.env, [budget.Spend(
        request_id=f"{admin.settings.env}-dash", key_id=key_id, nanos=500_000_000,
        at=datetime.now(UTC))])
    client = await _browser(admin)
    page = (await client.get("/dashboard/usage")).text
    await client.aclose()
    row = page[page.index('id="budgets-table"'):]
    row = row[row.index("dash-budget"):row.index("</tr>", row.index("dash-budget"))]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
    assert cells[:6] == ["monthly", "$2.00", "$0.5000", "$0.0000", "$1.5000", "25.0 %"], cells
    assert cells[6] == "50 %, 90 %"


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
    assert (await admin.client.get(f"/api/keys/{made['id']}")).json()["state"] == "revoked"   # kept
    deleted = await client.post(f"/dashboard/keys/{made['id']}/delete", data={"csrf_token": token})
    assert deleted.status_code == 303
    assert all(k["name"] != "dash-key" for k in (await admin.client.get("/api/keys")).json()["keys"])
    audit = (await admin.client.get("/api/compliance/audit-log", params={"action": "keys.*"})).json()
    assert [e["action"] for e in audit["entries"][:3]] == ["keys.delete", "keys.revoke", "keys.create"]
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


# --- routing and operations pages (dashboard_ops.py) ---------------------------------------------

OPS_PAGES = ["/dashboard/combos", "/dashboard/limits", "/dashboard/cache", "/dashboard/sync",
             "/dashboard/cli-tools", "/dashboard/evals"]
OPS_FORMS = ["/dashboard/providers/p/test", "/dashboard/combos", "/dashboard/combos/c", "/dashboard/combos/c/steps",
             "/dashboard/combos/c/delete", "/dashboard/aliases", "/dashboard/aliases/a/delete",
             "/dashboard/limits/reset", "/dashboard/cache/clear", "/dashboard/sync/initialize",
             "/dashboard/sync/remote", "/dashboard/sync/run", "/dashboard/cli-tools/claude", "/dashboard/evals",
             "/dashboard/evals/s/run"]


async def _actions(admin: Admin, prefix: str) -> list[str]:
    answer = await admin.client.get("/api/compliance/audit-log", params={"action": prefix})
    return [e["action"] for e in answer.json()["entries"]]


async def _follow(client: httpx.AsyncClient, answer: httpx.Response) -> str:
    assert answer.status_code == 303, (answer.status_code, answer.text[:400])
    return (await client.get(answer.headers["location"])).text


async def test_ops_pages_need_a_login_and_forms_need_the_csrf_token(admin: Admin) -> None:
    async with admin.anonymous() as anonymous:
        for path in [*OPS_PAGES, "/dashboard/evals/s"]:
            page = await anonymous.get(path)
            assert page.status_code == 303 and page.headers["location"].startswith("/dashboard/login"), path
        for path in OPS_FORMS:
            posted = await anonymous.post(path, data={"csrf_token": "x"})
            assert posted.status_code == 303 and "/dashboard/login" in posted.headers["location"], path
    client = await _browser(admin)
    for path in OPS_FORMS:
        forged = await client.post(path, data={"csrf_token": "forged", "action": "pull"})
        assert forged.status_code == 403 and "form expired" in forged.text, path
        cross = await client.post(path, data={"csrf_token": "x"}, headers={"sec-fetch-site": "cross-site"})
        assert cross.status_code == 403, path
    for path in OPS_PAGES:
        page = await client.get(path)
        assert page.status_code == 200 and 'aria-current="page"' in page.text, path
    await client.aclose()


async def test_provider_test_button_and_connection_health(admin: Admin, monkeypatch: pytest.MonkeyPatch) -> None:
    from omniroute.config.routing_spec import CooldownSettings, ResilienceProfile
    from omniroute.shared_state.breaker import Breakers
    from omniroute.shared_state.cooldown import Cooldowns
    from omniroute_admin.features import provider_calls

    created = await admin.client.post("/api/providers", json={
        "id": "healthprov", "type": "openai", "base_url": "http://127.0.0.1:9/v1", "models": ["m1"],
        "connections": [{"name": "a", "api_key": "sk-health-a-123456"}, {"name": "b", "priority": 1}]})
    assert created.status_code in (200, 201), created.text
    state = admin.app.state.admin
    await Breakers(state.redis, admin.settings.env).record("healthprov:a", False,
                                                          ResilienceProfile(failure_threshold=1))
    await Cooldowns(state.redis, admin.settings.env).fail("healthprov:b", CooldownSettings(base_s=60),
                                                          reason="upstream 503")
    client = await _browser(admin)
    page = await client.get("/dashboard/providers")
    token = _csrf(page)
    assert "breaker open" in page.text and "cooling down" in page.text and "upstream 503" in page.text
    assert 'for="test-model-' in page.text

    # No executor runs in this test: the real call fails, and the page says how.
    failed = await _follow(client, await client.post("/dashboard/providers/healthprov/test",
                                                     data={"csrf_token": token, "connection": "a"}))
    assert "Test of healthprov/a with model m1 failed" in failed and "executor" in failed
    assert 'role="alert"' in failed and 'aria-live="assertive"' in failed

    async def answered(settings: object, operation: int, target: object, body: object = None) -> object:
        return provider_calls.Outcome(True, {"latency_ms": 42.5})
    monkeypatch.setattr(provider_calls, "call", answered)
    ok = await _follow(client, await client.post("/dashboard/providers/healthprov/test",
                                                 data={"csrf_token": token, "model": "m2"}))
    assert "Test of healthprov/a with model m2: OK in 42.5 ms." in ok
    missing = await _follow(client, await client.post("/dashboard/providers/nope/test", data={"csrf_token": token}))
    assert "No provider named" in missing
    assert await _actions(admin, "providers.test") == ["providers.test"] * 2   # the API's audit row

    # Limits & breakers: the same health, and the reset buttons (the API's reset, audited).
    limits = await client.get("/dashboard/limits")
    assert "healthprov:a" in limits.text and "OPEN" in limits.text and "upstream 503" in limits.text
    one = await _follow(client, await client.post("/dashboard/limits/reset",
                                                  data={"csrf_token": token, "connection": "healthprov:a"}))
    assert "Breaker of healthprov:a reset." in one
    health = (await admin.client.get("/api/resilience")).json()["connections"]
    assert health["healthprov:a"]["breaker"] == "CLOSED" and health["healthprov:b"]["cooldownS"] > 0
    everything = await _follow(client, await client.post("/dashboard/limits/reset", data={"csrf_token": token}))
    assert "cooldown(s) cleared" in everything
    assert (await admin.client.get("/api/resilience")).json()["connections"]["healthprov:b"]["cooldownS"] == 0
    assert (await _actions(admin, "resilience.*"))[:2] == ["resilience.reset", "resilience.reset"]
    await client.aclose()


async def test_combos_and_aliases_edit_reorder_and_validation(admin: Admin) -> None:
    client = await _browser(admin)
    blank = await client.get("/dashboard/combos")
    token = _csrf(blank)
    assert 'id="new-retries" name="max_retries" type="number" min="0" max="10" value="0"' in blank.text
    combo = {"csrf_token": token, "name": "dash-combo", "strategy": "priority",
             "models": "p/one\np/two\r\np/three", "max_retries": "1", "enabled": "on"}
    made = await _follow(client, await client.post("/dashboard/combos", data=combo))
    assert "Combo dash-combo created." in made
    assert (await admin.client.get("/api/combos/dash-combo")).json()["models"] == ["p/one", "p/two", "p/three"]

    # Invalid: shown beside the form (400), what was typed kept.
    bad = await client.post("/dashboard/combos", data={**combo, "name": "loop", "models": "loop\np/x"})
    assert bad.status_code == 400 and 'class="form-error"' in bad.text and "cannot name itself" in bad.text
    assert 'value="loop"' in bad.text and "p/x" in bad.text
    empty = await client.post("/dashboard/combos", data={**combo, "name": "none", "models": " "})
    assert empty.status_code == 400 and "models" in empty.text
    dup = await client.post("/dashboard/combos", data=combo)
    assert dup.status_code == 400 and "exists" in dup.text

    # Reorder: down, up, remove; each the API's PUT.
    moved = await _follow(client, await client.post("/dashboard/combos/dash-combo/steps", data={
        "csrf_token": token, "index": "0", "step": "p/one", "action": "down"}))
    assert "Moved p/one down" in moved
    assert (await admin.client.get("/api/combos/dash-combo")).json()["models"] == ["p/two", "p/one", "p/three"]
    await client.post("/dashboard/combos/dash-combo/steps", data={
        "csrf_token": token, "index": "2", "step": "p/three", "action": "up"})
    assert (await admin.client.get("/api/combos/dash-combo")).json()["models"] == ["p/two", "p/three", "p/one"]
    stale = await _follow(client, await client.post("/dashboard/combos/dash-combo/steps", data={
        "csrf_token": token, "index": "0", "step": "p/one", "action": "up"}))
    assert "changed meanwhile" in stale
    edge = await _follow(client, await client.post("/dashboard/combos/dash-combo/steps", data={
        "csrf_token": token, "index": "0", "step": "p/two", "action": "up"}))
    assert "cannot move further" in edge
    await client.post("/dashboard/combos/dash-combo/steps", data={
        "csrf_token": token, "index": "1", "step": "p/three", "action": "remove"})
    assert (await admin.client.get("/api/combos/dash-combo")).json()["models"] == ["p/two", "p/one"]
    page = await client.get("/dashboard/combos")
    assert "Move p/two up" in page.text and 'aria-label="Steps of dash-combo, in order"' in page.text

    # Edit: strategy and weights; a mismatch of weights is shown in that combo's form.
    saved = await _follow(client, await client.post("/dashboard/combos/dash-combo", data={
        "csrf_token": token, "strategy": "weighted", "models": "p/two\np/one", "weights": "3, 1"}))
    assert "Combo dash-combo saved." in saved
    stored = (await admin.client.get("/api/combos/dash-combo")).json()
    assert stored["strategy"] == "weighted" and stored["weights"] == [3.0, 1.0] and stored["enabled"] is False
    mismatch = await client.post("/dashboard/combos/dash-combo", data={
        "csrf_token": token, "strategy": "weighted", "models": "p/two\np/one", "weights": "3"})
    assert mismatch.status_code == 400 and "one entry per model" in mismatch.text and "<details open>" in mismatch.text
    await client.post("/dashboard/combos/dash-combo/steps", data={
        "csrf_token": token, "index": "1", "step": "p/one", "action": "up"})
    assert (await admin.client.get("/api/combos/dash-combo")).json()["weights"] == [1.0, 3.0]   # weights follow

    # Aliases.
    alias = await _follow(client, await client.post("/dashboard/aliases", data={
        "csrf_token": token, "alias": "fast", "model": "dash-combo"}))
    assert "Alias fast saved." in alias
    assert (await admin.client.get("/api/models/alias")).json()["aliases"]["fast"] == "dash-combo"
    invalid = await client.post("/dashboard/aliases", data={"csrf_token": token, "alias": "bad alias!", "model": "x"})
    assert invalid.status_code == 400 and 'id="alias-error"' in invalid.text and 'value="bad alias!"' in invalid.text
    await client.post("/dashboard/aliases/fast/delete", data={"csrf_token": token})
    assert "fast" not in (await admin.client.get("/api/models/alias")).json()["aliases"]
    gone = await _follow(client, await client.post("/dashboard/combos/dash-combo/delete", data={"csrf_token": token}))
    assert "Combo dash-combo deleted." in gone
    assert (await admin.client.get("/api/combos/dash-combo")).status_code == 404
    assert set(await _actions(admin, "combos.*")) == {"combos.create", "combos.update", "combos.delete"}
    assert set(await _actions(admin, "aliases.*")) == {"aliases.set", "aliases.delete"}
    await client.aclose()


async def test_cache_page_and_clear(admin: Admin) -> None:
    from omniroute.shared_state.cache import ExactCache

    cache = ExactCache(admin.app.state.admin.redis, admin.settings.env)
    await cache.begin("dash-entry", "r1", lease_s=5, wait_s=0)
    await cache.finish("dash-entry", "r1", b"answer", 60)
    client = await _browser(admin)
    page = await client.get("/dashboard/cache")
    assert "Exact cache" in page.text and "Semantic cache" in page.text
    assert re.search(r'id="exact-entries">1<', page.text)
    cleared = await _follow(client, await client.post("/dashboard/cache/clear", data={"csrf_token": _csrf(page)}))
    assert "Cache cleared: 1 exact" in cleared
    assert (await admin.client.get("/api/cache")).json()["exactCache"]["entries"] == 0
    assert "cache.clear" in await _actions(admin, "cache.clear")
    await client.aclose()


async def test_sync_page_token_remote_pull_and_push(admin: Admin, monkeypatch: pytest.MonkeyPatch) -> None:
    client = await _browser(admin)
    page = await client.get("/dashboard/sync")
    token = _csrf(page)
    assert "Not enabled" in page.text
    made = await client.post("/dashboard/sync/initialize", data={"csrf_token": token})
    assert made.status_code == 201
    sync_token = re.search(r'id="sync-token-value" class="secret">([^<]+)<', made.text)
    assert sync_token and sync_token.group(1).startswith("sk-sync-")
    assert sync_token.group(1) not in (await client.get("/dashboard/sync")).text   # shown once
    assert (await admin.client.get("/api/sync/cloud")).json()["serving"]["enabled"] is True
    again = await _follow(client, await client.post("/dashboard/sync/initialize", data={"csrf_token": token}))
    assert "rotate" in again

    wrong = await client.post("/dashboard/sync/remote", data={"csrf_token": token, "url": "ftp://x", "token": "short"})
    assert wrong.status_code == 400 and 'id="remote-error"' in wrong.text and 'value="ftp://x"' in wrong.text
    # The remote is this very admin, reached in-process: a real round trip through /api/cloud/config.
    real = httpx.AsyncClient

    def in_process(*args: object, **kwargs: object) -> httpx.AsyncClient:
        kwargs.setdefault("transport", httpx.ASGITransport(app=admin.app))
        return real(*args, **kwargs)  # type: ignore[arg-type]
    monkeypatch.setattr(httpx, "AsyncClient", in_process)
    saved = await _follow(client, await client.post("/dashboard/sync/remote", data={
        "csrf_token": token, "url": "http://admin.test", "token": sync_token.group(1)}))
    assert "Remote saved." in saved and "http://admin.test" in saved
    async def run(action: str, **extra: str) -> str:
        return await _follow(client, await client.post("/dashboard/sync/run", data={
            "csrf_token": token, "action": action, **extra}))
    early = await run("push")
    assert "Push failed" in early and "pull first" in early
    # A stored credential makes the pull below re-encrypt (so change) this deployment's document,
    # whatever other tests left in this database.
    assert (await admin.client.post("/api/providers", json={
        "id": "sync-page-cred", "type": "openai",
        "connections": [{"name": "a", "api_key": "sk-sync-page-credential-01"}]})).status_code in (201, 409)
    pulled = await run("pull")
    assert "Pulled the configuration of the remote (" in pulled and "providers" in pulled
    # Pulling from itself re-encrypts the credentials, so its own document no longer has the ETag it
    # served: the conflict is shown, and the force box overrides it.
    conflict = await run("push")
    assert "Push failed" in conflict and "ETag mismatch" in conflict
    pushed = await run("push", force="on")
    assert "Pushed this configuration to the remote." in pushed
    status = (await admin.client.get("/api/sync/cloud")).json()
    assert status["remote"]["lastPullAt"] and status["remote"]["lastPushAt"]
    assert {"sync.pull", "sync.push", "sync.remote", "sync.initialize"} <= set(await _actions(admin, "sync.*"))
    await client.aclose()


async def test_cli_tools_page_writes_a_config(admin: Admin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from omniroute_admin.features import cli_tools

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "claude").write_text("#!/bin/sh\necho '2.1.0 (Claude Code)'\n")
    (bin_dir / "claude").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    # OMNIROUTE_CLI_HOME and OMNIROUTE_PUBLIC_URL of the running admin, for this test.
    state = admin.app.state.admin
    monkeypatch.setattr(state, "settings", dataclasses.replace(
        state.settings, cli_home=str(tmp_path / "home"), public_url="http://gateway.test:20128"))
    monkeypatch.setattr(cli_tools, "PROBE_TIMEOUT_S", 0.5)
    client = await _browser(admin)
    page = await client.get("/dashboard/cli-tools")
    for tool in cli_tools.TOOLS:
        assert f'id="tool-{tool}"' in page.text and f'for="{tool}-key"' in page.text
    assert "2.1.0 (Claude Code)" in page.text and "not on the admin" in page.text
    token = _csrf(page)
    short = await _follow(client, await client.post("/dashboard/cli-tools/claude",
                                                    data={"csrf_token": token, "api_key": "x"}))
    assert "not written" in short
    written = await _follow(client, await client.post("/dashboard/cli-tools/claude", data={
        "csrf_token": token, "api_key": "sk-omni-dash-0123456789", "model": "dash-combo"}))
    assert "claude: wrote" in written and 'id="points-claude">points at this gateway' in written
    assert (await admin.client.get("/api/cli-tools/claude-settings")).json()["pointsAtGateway"] is True
    settings = json.loads((tmp_path / "home" / ".claude" / "settings.json").read_text())
    assert settings["env"]["ANTHROPIC_AUTH_TOKEN"] == "sk-omni-dash-0123456789"
    assert "cli_tools.write" in await _actions(admin, "cli_tools.write")
    await client.aclose()


async def test_evals_page_save_run_and_compare(admin: Admin) -> None:
    from tests.mocks.server import MockServer

    client = await _browser(admin)
    page = await client.get("/dashboard/evals")
    token = _csrf(page)
    assert 'for="suite-json"' in page.text
    broken = await client.post("/dashboard/evals", data={"csrf_token": token, "suite": "{not json"})
    assert broken.status_code == 400 and "not JSON" in broken.text and "{not json" in broken.text
    invalid = await client.post("/dashboard/evals", data={"csrf_token": token, "suite": json.dumps(
        {"name": "dash", "cases": [{"id": "a", "input": "x", "expected": {"type": "exact", "value": "y"}}]})})
    assert invalid.status_code == 400 and "no default model" in invalid.text
    suite = {"name": "dash", "model": "mock/gpt-4o-mini", "cases": [
        {"id": "answers", "input": "hi", "expected": {"type": "regex", "value": "."}},
        {"id": "exact", "input": "hi", "expected": {"type": "exact", "value": "certainly not this"}}]}
    saved = await _follow(client, await client.post("/dashboard/evals", data={"csrf_token": token,
                                                                             "suite": json.dumps(suite)}))
    assert "Suite dash saved (2 cases)." in saved and 'href="/dashboard/evals/dash"' in saved
    keyless = await _follow(client, await client.post("/dashboard/evals/dash/run", data={"csrf_token": token}))
    assert "Not run" in keyless and "API key" in keyless
    with MockServer().start() as mock:   # an OpenAI-shaped answer, as the gateway gives
        form = {"csrf_token": token, "api_key": "sk-omni-eval-0123456789", "base_url": mock.url}
        first = await client.post("/dashboard/evals/dash/run", data=form)
        assert first.status_code == 303 and "?run=" in first.headers["location"]
        shown = (await client.get(first.headers["location"])).text
        assert "1 of 2 passed." in shown and 'class="pass"' in shown and 'class="fail"' in shown
        second = await _follow(client, await client.post("/dashboard/evals/dash/run", data=form))
    assert "+0 points since" in second and ">same<" in second and 'aria-live="polite"' in second
    runs = (await admin.client.get("/api/evals/dash")).json()["runs"]
    assert len(runs) == 2
    picked = await client.get(f"/dashboard/evals/dash?run={runs[1]['id']}")
    assert f"Run #{runs[1]['id']}" in picked.text and ">new<" in picked.text
    assert (await client.get("/dashboard/evals/none")).status_code == 404
    assert {"evals.save", "evals.run"} <= set(await _actions(admin, "evals.*"))
    await client.aclose()

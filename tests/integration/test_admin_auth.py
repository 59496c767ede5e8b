"""Admin authentication: argon2-hashed password from INITIAL_PASSWORD, changeable; sessions;
CSRF on cookie writes; lockout; require-login switch; first-run state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.admin_app import PASSWORD, Admin, running_admin


@pytest.fixture(scope="module")
async def admin(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Admin]:
    async with running_admin(tmp_path_factory.mktemp("admin")) as running:
        yield running


async def test_password_is_stored_as_argon2_and_login_sets_hardened_cookies(admin: Admin) -> None:
    async with admin.app.state.admin.pool.connection() as conn:
        row = await (await conn.execute("SELECT password_hash, is_initial FROM admin_password")).fetchone()
    assert row is not None and row[0].startswith("$argon2id$") and PASSWORD not in row[0] and row[1]
    async with admin.anonymous() as client:
        answer = await client.post("/api/auth/login", json={"password": PASSWORD})
        assert answer.status_code == 200 and answer.json()["csrfToken"]
        cookies = answer.headers.get_list("set-cookie")
        auth = next(c for c in cookies if c.startswith("auth_token="))
        csrf = next(c for c in cookies if c.startswith("csrf_token="))
        assert "HttpOnly" in auth and "SameSite=strict" in auth and "Secure" not in auth
        assert "HttpOnly" not in csrf
        secure = await client.post("/api/auth/login", json={"password": PASSWORD},
                                   headers={"x-forwarded-proto": "https"})
        assert all("Secure" in c for c in secure.headers.get_list("set-cookie"))


async def test_management_routes_need_a_session(admin: Admin) -> None:
    async with admin.anonymous() as client:
        for method, path in [("GET", "/api/providers"), ("GET", "/api/settings"),
                             ("PUT", "/api/settings/require-login"), ("GET", "/api/compliance/audit-log"),
                             ("GET", "/api/db-backups"), ("PUT", "/api/db-backups"),
                             ("GET", "/api/db-backups/export"), ("POST", "/api/db-backups/import"),
                             ("GET", "/api/sessions"), ("PUT", "/api/auth/password"),
                             ("GET", "/api/settings/ip-filter"), ("POST", "/api/settings/proxy/test")]:
            answer = await client.request(method, path)
            assert answer.status_code == 401, (method, path, answer.status_code)
            assert "Log in" in answer.json()["error"]["message"]


async def test_cookie_writes_need_the_csrf_header_and_bearer_clients_are_exempt(admin: Admin) -> None:
    async with admin.anonymous() as client:
        login = (await client.post("/api/auth/login", json={"password": PASSWORD})).json()
        body = {"instance_name": "csrf-test"}
        refused = await client.put("/api/settings", json=body)
        assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["error"]["message"]
        wrong = await client.put("/api/settings", json=body, headers={"x-csrf-token": "forged"})
        assert wrong.status_code == 403
        assert (await client.get("/api/settings")).status_code == 200   # reads need no token
        ok = await client.put("/api/settings", json=body, headers={"x-csrf-token": login["csrfToken"]})
        assert ok.status_code == 200
        cross = await client.put("/api/settings", json=body, headers={
            "x-csrf-token": login["csrfToken"], "sec-fetch-site": "cross-site"})
        assert cross.status_code == 403
    async with admin.anonymous() as script:
        bearer = await script.put("/api/settings", json={"instance_name": "bearer"},
                                  headers={"authorization": f"Bearer {login['token']}"})
        assert bearer.status_code == 200


async def test_lockout_after_five_failures_per_address(admin: Admin) -> None:
    async with admin.anonymous("198.51.100.10") as attacker, admin.anonymous("198.51.100.11") as other:
        for _ in range(5):
            assert (await attacker.post("/api/auth/login", json={"password": "guess"})).status_code == 401
        locked = await attacker.post("/api/auth/login", json={"password": PASSWORD})
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
        assert (await other.post("/api/auth/login", json={"password": PASSWORD})).status_code == 200
    # Shared through Redis: another replica (same env) sees the same counter.
    key = f"{admin.settings.env}:login-failures:198.51.100.10"
    assert int(await admin.app.state.admin.redis.get(key)) == 5


async def test_validation_errors_are_400_with_a_message(admin: Admin) -> None:
    answer = await admin.client.post("/api/auth/login", json={})
    assert answer.status_code == 400 and "password" in answer.json()["error"]["message"]
    short = await admin.client.put("/api/auth/password", json={"current_password": PASSWORD,
                                                               "new_password": "short"})
    assert short.status_code == 400 and "new_password" in short.json()["error"]["message"]


async def test_require_login_switch_and_init(admin: Admin) -> None:
    async with admin.anonymous() as client:
        init = (await client.get("/api/init")).json()
        assert init == {"requireLogin": True, "authenticated": False, "passwordIsInitial": True,
                        "sso": {"enabled": False}}   # no OMNIROUTE_OIDC_* (test_oidc_login.py has them)
        assert (await admin.client.get("/api/settings/require-login")).json() == {"requireLogin": True}
        bad = await admin.client.put("/api/settings/require-login", json={"requireLogin": "maybe"})
        assert bad.status_code == 400
        off = await admin.client.put("/api/settings/require-login", json={"requireLogin": False})
        assert off.status_code == 200 and off.json() == {"requireLogin": False}
        try:
            assert (await client.get("/api/providers")).status_code == 200   # open now
            opened = (await client.get("/api/init")).json()
            assert opened["requireLogin"] is False and opened["firstRun"] is True
            assert (await client.put("/api/settings/require-login", json={"requireLogin": True},
                                     headers={"sec-fetch-site": "cross-site"})).status_code == 403
        finally:
            on = await client.put("/api/settings/require-login", json={"requireLogin": True})
            assert on.status_code == 200
        assert (await client.get("/api/providers")).status_code == 401
    audit = (await admin.client.get("/api/compliance/audit-log",
                                    params={"action": "settings.general"})).json()["entries"]
    assert audit[0]["actor"] == "anonymous" and audit[1]["actor"] == "admin"


async def test_password_change_ends_other_sessions(admin: Admin, tmp_path: Path) -> None:
    other = await admin.logged_in()
    me = await admin.logged_in()
    wrong = await me.put("/api/auth/password",
                         json={"current_password": "nope", "new_password": "n3w-secret!"})
    assert wrong.status_code == 403
    sessions = (await me.get("/api/sessions")).json()["sessions"]
    assert len(sessions) >= 2 and all("csrf" not in s for s in sessions)
    changed = await me.put("/api/auth/password", json={"current_password": PASSWORD,
                                                       "new_password": "n3w-secret!"})
    assert changed.status_code == 200
    assert (await other.get("/api/settings")).status_code == 401
    assert (await me.get("/api/settings")).status_code == 200
    async with admin.anonymous("198.51.100.20") as client:
        assert (await client.post("/api/auth/login", json={"password": PASSWORD})).status_code == 401
        assert (await client.post("/api/auth/login", json={"password": "n3w-secret!"})).status_code == 200
        assert (await client.get("/api/init")).json()["passwordIsInitial"] is False
    # Put it back for the other tests of this module (and the original client's session).
    assert (await me.put("/api/auth/password", json={"current_password": "n3w-secret!",
                                                     "new_password": PASSWORD})).status_code == 200
    admin.client = me
    await other.aclose()

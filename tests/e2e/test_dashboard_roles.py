"""Roles in a real browser (Chromium, as tests/e2e/test_dashboard.py drives it) against the whole
stack: a viewer's dashboard, page by page through its own navigation, carries no write form; a
management token created on the Tokens page by the owner works against the API with its role.
Screenshots land in tests/artifacts/."""

from __future__ import annotations

import asyncio
import types
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request

from omniroute import shared_state
from omniroute_admin import access, sessions
from tests.e2e.test_dashboard import _launch
from tests.support import Gateway

pytestmark = pytest.mark.xdist_group("gateway")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-roles-{name}.png"), full_page=True)


def _person_session(gateway: Gateway, person_id: str, email: str, role: access.Role) -> str:
    """The session the admin starts when this person signs in (single sign-on), made with the
    admin's own start_session against the stack's Redis and Postgres."""
    async def start() -> str:
        pool = AsyncConnectionPool(gateway.settings.database_url, min_size=1, max_size=1, open=False)
        await pool.open()
        redis = shared_state.connect(gateway.settings)
        try:
            state = types.SimpleNamespace(settings=gateway.settings, pool=pool, redis=redis)
            principal = access.Principal(kind="person", actor=f"person:{email}", role=role, person_id=person_id)
            request = Request({"type": "http", "headers": [(b"user-agent", b"chromium")], "client": ("127.0.0.1", 1)})
            issued = await sessions.start_session(state, request, principal)  # type: ignore[arg-type]
            return str(issued["token"])
        finally:
            await pool.close()
            await redis.aclose()
    return asyncio.run(start())


def _write_forms(page: Page) -> list[str]:
    """The actions of the page's POST forms, the logout button aside."""
    actions: list[str] = page.eval_on_selector_all(
        "form", "forms => forms.filter(f => f.method.toLowerCase() === 'post')"
                ".map(f => f.getAttribute('action') || location.pathname)")
    return [action for action in actions if action != "/dashboard/logout"]


def test_a_viewers_dashboard_has_no_write_forms(gateway: Gateway) -> None:
    owner = gateway.admin_client()
    created = owner.post("/api/people", json={"email": "browser-viewer@example.com", "role": "viewer"})
    owner.close()
    assert created.status_code == 201, created.text
    token = _person_session(gateway, created.json()["id"], "browser-viewer@example.com", "viewer")
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_cookies([{"name": sessions.COOKIE, "value": token, "url": gateway.url}])
            page = context.new_page()
            page.goto(f"{gateway.url}/dashboard")
            assert page.get_by_role("heading", name="Overview").is_visible()
            links = page.eval_on_selector_all("header nav a", "links => links.map(a => a.getAttribute('href'))")
            assert {"/dashboard/providers", "/dashboard/keys", "/dashboard/settings", "/dashboard/people",
                    "/dashboard/tokens", "/dashboard/audit"} <= set(links)
            visited = 0
            for href in links:
                page.goto(f"{gateway.url}{href}")
                assert _write_forms(page) == [], (href, _write_forms(page))
                visited += 1
            assert visited >= 15
            page.goto(f"{gateway.url}/dashboard/settings")
            _shot(page, "viewer-settings")
            # And what a hidden form would have posted is refused all the same (the role is
            # checked before the form's CSRF token).
            refused = page.request.post(f"{gateway.url}/dashboard/providers", form={"csrf_token": "x"})
            assert refused.status == 403 and "you are viewer" in refused.text()
        finally:
            browser.close()


def test_a_token_created_in_the_page_works_against_the_api(gateway: Gateway) -> None:
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.goto(f"{gateway.url}/dashboard/login")
            page.get_by_label("Admin password").fill(gateway.admin_password)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"{gateway.url}/dashboard")
            page.get_by_role("link", name="Tokens").click()
            page.get_by_label("Name", exact=True).fill("browser-ci")
            page.get_by_label("Role", exact=True).select_option("viewer")
            page.get_by_role("button", name="Create").click()
            secret = page.locator("#new-token-value").inner_text().strip()
            assert secret.startswith("omr_mt_")
            _shot(page, "token-created")
            page.get_by_role("link", name="Tokens").click()
            assert secret not in page.content() and "browser-ci" in page.content()
        finally:
            browser.close()
    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {secret}"}, timeout=20) as bot:
        assert bot.get("/api/providers").status_code == 200
        refused = bot.put("/api/settings", json={"instance_name": "by-a-viewer-token"})
        assert refused.status_code == 403
        assert refused.json()["error"]["message"] == "This needs the admin role; you are viewer."
        rows = bot.get("/api/audit", params={"action": "tokens.create", "actor": "admin"}).json()["entries"]
        assert any(row["detail"].get("name") == "browser-ci" for row in rows)

"""Single sign-on in a real browser (Chromium, as tests/e2e/test_dashboard.py drives it) on a
whole stack configured for OpenID Connect against the mock IdP: the login page offers "Sign in
with MockIdP"; one click goes through the edge to the admin, to the IdP (which approves the mock
user), back to the callback, and lands on the dashboard signed in as that person, with the role
their group maps to. Screenshots land in tests/artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from playwright.sync_api import sync_playwright

from tests.e2e.test_dashboard import _launch
from tests.mocks.oidc_idp import MockIdp
from tests.support import Gateway, running_gateway

pytestmark = pytest.mark.xdist_group("dashboard-sso")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
KEY = "sk-omni-sso-0123456789abcdef"


@pytest.fixture(scope="module")
def idp() -> Iterator[MockIdp]:
    with MockIdp(client_id="omniroute-dashboard", client_secret="sso-secret") as running:
        running.user.email, running.user.name = "ada@example.com", "Ada Lovelace"
        running.user.groups = ["platform-admins", "everyone"]
        yield running


@pytest.fixture(scope="module")
def stack(idp: MockIdp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    env = {"OMNIROUTE_OIDC_ISSUER": idp.issuer, "OMNIROUTE_OIDC_CLIENT_ID": "omniroute-dashboard",
           "OMNIROUTE_OIDC_CLIENT_SECRET": "sso-secret", "OMNIROUTE_OIDC_DISPLAY_NAME": "MockIdP",
           "OMNIROUTE_OIDC_ROLE_MAP": orjson.dumps({"platform-admins": "admin"}).decode()}
    config = {"providers": [], "keys": [{"name": "sso", "key": KEY}]}
    with running_gateway(Path(tmp_path_factory.mktemp("sso")), config, api_key=KEY, extra_env=env) as running:
        yield running


def test_sign_in_with_the_provider_lands_on_the_dashboard_signed_in(stack: Gateway, idp: MockIdp) -> None:
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.on("console", lambda message: errors.append(f"{message.text} {message.location}")
                    if message.type == "error" else None)
            page.goto(f"{stack.url}/dashboard/usage")
            assert page.url.startswith(f"{stack.url}/dashboard/login")
            button = page.get_by_role("link", name="Sign in with MockIdP")
            assert button.is_visible()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard-sso-1-login.png"), full_page=True)
            button.click()
            page.wait_for_url(f"{stack.url}/dashboard/usage")   # where the login page was asked for
            assert page.get_by_role("heading", name="Usage").first.is_visible()
            page.screenshot(path=str(ARTIFACTS / "dashboard-sso-2-signed-in.png"), full_page=True)

            # The browser's session is Ada's, with the role of her group (admin: may read settings).
            cookies = {c["name"]: c for c in page.context.cookies()}
            assert cookies["auth_token"]["httpOnly"] and cookies["auth_token"]["sameSite"] == "Strict"
            answer = page.request.get(f"{stack.url}/api/settings")
            assert answer.status == 200
            page.goto(f"{stack.url}/dashboard")
            assert page.get_by_role("heading", name="Overview").is_visible()
        finally:
            browser.close()
    assert errors == []
    # The redirect_uri was the gateway's public address, as the browser used it (through the edge).
    people = stack.rows("SELECT email, role, source, oidc_subject FROM people")
    assert people == [("ada@example.com", "admin", "oidc", f"{idp.issuer}|user-1")]
    logins = stack.rows("SELECT actor, detail->'groups' FROM audit_log WHERE action = 'auth.sso_login'")
    assert logins == [("person:ada@example.com", ["platform-admins", "everyone"])]

"""The dashboard in a real browser (Debian's chromium driven by Playwright, headless) against
the whole running stack: log in, add a provider, create a key, send a request through the gateway
with that key, and find it on the usage page. Screenshots land in tests/artifacts/.

Needs Chromium, which `make test` installs first (omniroute.devstack.prerequisites: Debian's
`chromium`, or OMNIROUTE_CHROMIUM); Playwright never downloads a browser here.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import openai
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from omniroute.devstack import prerequisites
from tests.mocks.server import MockServer
from tests.support import Gateway

pytestmark = pytest.mark.xdist_group("gateway")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def _launch(playwright: object) -> Browser:
    # No skip: a missing browser is a broken test machine, and the message says how to fix it.
    executable = prerequisites.chromium_path()
    assert executable, f"no Chromium: run `make test-deps`, or {prerequisites.install_command()}"
    browser: Browser = playwright.chromium.launch(executable_path=executable, args=ARGS)  # type: ignore[attr-defined]
    return browser


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def test_login_add_provider_create_key_and_see_the_request_in_usage(
        gateway: Gateway, mock_upstream: MockServer) -> None:
    # Someone else logs in through the edge first: their session must not leak to the browser
    # (the edge's shared client to the admin keeps no cookies).
    other = httpx.post(f"{gateway.url}/api/auth/login", json={"password": gateway.admin_password})
    assert other.status_code == 200
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.on("console",
                    lambda message: errors.append(message.text) if message.type == "error" else None)
            page.goto(f"{gateway.url}/dashboard")
            assert page.url.startswith(f"{gateway.url}/dashboard/login")
            page.get_by_label("Admin password").fill(gateway.admin_password)
            _shot(page, "1-login")
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"{gateway.url}/dashboard")
            assert page.get_by_role("heading", name="Overview").is_visible()

            page.get_by_role("link", name="Providers").click()
            page.get_by_role("textbox", name=re.compile(r"^Id\b")).fill("browserprov")
            page.get_by_label("Type", exact=True).select_option("openai")
            page.get_by_label("Base URL").fill(f"{mock_upstream.url}/v1")
            page.get_by_label("Models").fill("gpt-4o-mini")
            page.get_by_label("Connection name").fill("main")
            page.get_by_label("Upstream API key").fill("sk-upstream-browser-1")
            page.get_by_role("button", name="Add provider").click()
            assert page.get_by_role("status").filter(has_text="Provider browserprov added.").is_visible()
            _shot(page, "2-providers")

            page.get_by_role("link", name="API keys").click()
            page.get_by_label("Name", exact=True).fill("browser-key")
            page.get_by_role("button", name="Create key").click()
            key = page.locator("#new-key-value").inner_text().strip()
            assert key.startswith("sk-omni-")
            _shot(page, "3-key-created")

            client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
            deadline = time.monotonic() + 10
            while True:   # the new provider and key reach the edge and router within a second
                try:
                    answer = client.chat.completions.create(
                        model="browserprov/gpt-4o-mini",
                        messages=[{"role": "user", "content": "hi from the browser test"}])
                    break
                except (openai.AuthenticationError, openai.NotFoundError, openai.BadRequestError):
                    assert time.monotonic() < deadline, "the new key and provider never took effect"
                    time.sleep(0.2)
            assert answer.choices[0].message.content
            assert mock_upstream.last(path="/v1/chat/completions").headers["authorization"] == \
                "Bearer sk-upstream-browser-1"

            deadline = time.monotonic() + 20
            while True:   # accounting writes the usage row asynchronously (JetStream → Postgres)
                page.goto(f"{gateway.url}/dashboard/usage?group=key&period=1h")
                row = page.locator("#usage-table tbody tr").filter(has_text="browser-key")
                if row.count():
                    break
                assert time.monotonic() < deadline, "the request never showed on the usage page"
                time.sleep(0.5)
            cells = row.first.locator("td").all_inner_texts()
            assert cells[0] == "1"   # one request
            _shot(page, "4-usage")
            page.goto(f"{gateway.url}/dashboard/logs?key=browser-key")
            assert page.get_by_role("cell", name="browserprov", exact=False).first.is_visible()
            page.goto(f"{gateway.url}/dashboard")
            _shot(page, "5-overview")
            page.goto(f"{gateway.url}/dashboard/audit")
            assert page.get_by_role("cell", name="keys.create").first.is_visible()
            _shot(page, "6-audit")

            # A combo edited through its page (create, then reorder with the keyboard), then used.
            page.get_by_role("link", name="Combos & aliases").click()
            page.get_by_role("textbox", name=re.compile(r"^Name\b")).fill("browser-combo")
            page.get_by_label("Steps").fill("browserprov/not-served\nbrowserprov/gpt-4o-mini")
            page.get_by_role("button", name="Create combo").click()
            assert page.get_by_role("status").filter(has_text="Combo browser-combo created.").is_visible()
            page.get_by_role("button", name="Move browserprov/gpt-4o-mini up").focus()
            page.keyboard.press("Enter")
            page.get_by_role("status").filter(has_text="Moved browserprov/gpt-4o-mini up").wait_for()
            steps = page.get_by_role("list", name="Steps of browser-combo, in order").locator("code")
            assert steps.all_inner_texts() == ["browserprov/gpt-4o-mini", "browserprov/not-served"]
            _shot(page, "7-combo")
            deadline = time.monotonic() + 10
            while True:   # the combo reaches the routers with the next snapshot reload
                try:
                    answer = client.chat.completions.create(
                        model="browser-combo", messages=[{"role": "user", "content": "through the combo"}])
                    break
                except (openai.NotFoundError, openai.BadRequestError):
                    assert time.monotonic() < deadline, "the combo never took effect"
                    time.sleep(0.2)
            assert answer.choices[0].message.content
            assert mock_upstream.last(path="/v1/chat/completions").body["model"] == "gpt-4o-mini"   # the moved step
        finally:
            browser.close()
    # CSP violations and script errors show up as console errors.
    assert not errors, errors


def test_teams_page_and_a_keys_lifecycle_in_the_browser(gateway: Gateway) -> None:
    """Create a team with limits and a budget, edit it, create a key in it, rotate the key (the
    new secret shown once, the old one refused at once) and revoke it; the keys page shows team and
    state throughout."""
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.on("console",
                    lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("dialog", lambda dialog: dialog.accept())   # the revoke button asks first
            page.goto(f"{gateway.url}/dashboard/login")
            page.get_by_label("Admin password").fill(gateway.admin_password)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"{gateway.url}/dashboard")

            page.get_by_role("link", name="Teams").click()
            page.get_by_label("Team id").fill("browser-team")
            page.get_by_label("Team name").fill("Browser team")
            page.get_by_label("Requests per minute").fill("120")
            page.get_by_label("Team budget in USD").fill("40")
            page.get_by_label("Team budget period").select_option("weekly")
            page.get_by_role("button", name="Create team").click()
            assert page.get_by_role("status").filter(has_text="Team browser-team created.").is_visible()
            row = page.locator("#teams-table tbody tr").filter(has_text="browser-team")
            assert row.locator("td").all_inner_texts()[:6] == ["Browser team", "all", "120", "—", "—", "40.0 / weekly"]
            row.get_by_text("Edit").click()
            edit = page.get_by_role("form", name="Edit team browser-team")
            edit.get_by_label("TPM").fill("50000")
            edit.get_by_role("button", name="Save team browser-team").click()
            assert page.get_by_role("status").filter(has_text="Team browser-team saved.").is_visible()
            row = page.locator("#teams-table tbody tr").filter(has_text="browser-team")
            assert row.locator("td").all_inner_texts()[2:4] == ["120", "50000"]
            _shot(page, "8-teams")

            page.get_by_role("link", name="API keys").click()
            page.get_by_label("Name", exact=True).fill("team-browser-key")
            page.get_by_label("Team", exact=True).select_option("browser-team")
            page.get_by_role("button", name="Create key").click()
            first = page.locator("#new-key-value").inner_text().strip()
            key_row = page.locator("#keys-table tbody tr").filter(has_text="team-browser-key")
            assert key_row.locator("td").first.inner_text() == "browser-team"
            assert key_row.locator(".key-state").inner_text() == "active"

            key_row.get_by_role("button", name="Rotate key team-browser-key").click()
            assert page.get_by_role("heading", name="Key “team-browser-key” rotated").is_visible()
            second = page.locator("#new-key-value").inner_text().strip()
            assert second.startswith("sk-omni-") and second != first
            refused = httpx.get(f"{gateway.url}/v1/models", headers={"authorization": f"Bearer {first}"})
            deadline = time.monotonic() + 5
            while refused.status_code != 401:   # no grace: the old secret is refused on the next reload
                assert time.monotonic() < deadline, refused.text
                time.sleep(0.05)
                refused = httpx.get(f"{gateway.url}/v1/models", headers={"authorization": f"Bearer {first}"})
            _shot(page, "9-key-rotated")

            key_row = page.locator("#keys-table tbody tr").filter(has_text="team-browser-key")
            key_row.get_by_role("button", name="Revoke key team-browser-key").click()
            assert page.get_by_role("status").filter(has_text="Key team-browser-key revoked.").is_visible()
            key_row = page.locator("#keys-table tbody tr").filter(has_text="team-browser-key")
            assert key_row.locator(".key-state").inner_text() == "revoked"
            deadline = time.monotonic() + 5
            while True:
                answer = httpx.get(f"{gateway.url}/v1/models", headers={"authorization": f"Bearer {second}"})
                if answer.status_code == 401 and answer.json()["error"]["message"] == "API key revoked":
                    break
                assert time.monotonic() < deadline, answer.text
                time.sleep(0.05)
            _shot(page, "10-key-revoked")
        finally:
            browser.close()
    assert not errors, errors

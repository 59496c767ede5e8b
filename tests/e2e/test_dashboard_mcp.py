"""The dashboard's MCP page in a real browser (Debian's chromium driven by Playwright, headless)
against the running stack: add an upstream MCP server with a credential (shown masked, never in
clear), see its health turn unhealthy when the routers' record says so, grant a team access to
its tools, find a tool call among the recent calls, and delete the server. Screenshots land in
tests/artifacts/."""

from __future__ import annotations

import asyncio
import hashlib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg
import pytest
from playwright.sync_api import Page, sync_playwright

from omniroute import shared_state
from omniroute.shared_state.mcp_health import MCP_BREAKER_PROFILE, McpBreakers
from tests.e2e.test_dashboard import _launch, _shot
from tests.support import Gateway

pytestmark = pytest.mark.xdist_group("gateway")
SECRET = "Bearer browser-tool-secret-246810"


def _mark_failing(gateway: Gateway, server_id: str) -> None:
    """What the routers record after the server failed N calls in a row."""
    async def record() -> None:
        client = shared_state.connect(gateway.settings)
        try:
            breakers = McpBreakers(client, gateway.settings.env)
            for _ in range(MCP_BREAKER_PROFILE.failure_threshold):
                await breakers.record(server_id, False, MCP_BREAKER_PROFILE)
        finally:
            await client.aclose()
    # Playwright's sync API runs its own event loop in this thread: record from another one.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, record()).result()


def _record_call(gateway: Gateway, server_id: str) -> None:
    args = b'{"query": "browser"}'
    with psycopg.connect(gateway.settings.database_url) as conn:
        conn.execute(
            "INSERT INTO mcp_calls (request_id, key_id, team_id, server_id, method, name, args_bytes, args_sha256, "
            "result_bytes, latency_ms, outcome, cost_usd, started_at) "
            "VALUES ('browser-call-1', 'key-browser', 'mcp-browser', %s, 'tools/call', 'lookup_ticket', %s, %s, "
            "321, 45.6, 'ok', 0.25, %s) ON CONFLICT (request_id) DO NOTHING",
            (server_id, len(args), hashlib.sha256(args).hexdigest(), datetime.now(UTC)))


def _row(page: Page, table: str, text: str):  # type: ignore[no-untyped-def]
    return page.locator(f"#{table} tbody tr").filter(has_text=text)


def test_mcp_page_servers_health_access_and_calls_in_the_browser(gateway: Gateway) -> None:
    api = gateway.admin_client()
    assert api.post("/api/teams", json={"id": "mcp-browser"}).status_code in (201, 409)
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.on("console",
                    lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("dialog", lambda dialog: dialog.accept())   # the delete button asks first
            page.goto(f"{gateway.url}/dashboard/login")
            page.get_by_label("Admin password").fill(gateway.admin_password)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"{gateway.url}/dashboard")

            page.get_by_role("link", name="MCP", exact=True).click()
            page.get_by_label("Server id").fill("browser-tools")
            page.get_by_label("Server name").fill("Browser tools")
            page.get_by_label("Transport").select_option("http")
            page.get_by_label("Server URL").fill("http://127.0.0.1:9/mcp")
            page.get_by_label("Credentials").fill(f"Authorization: {SECRET}")
            page.get_by_label("Price per call in USD").fill("0.25")
            page.get_by_role("button", name="Add server").click()
            assert page.get_by_role("status").filter(has_text="MCP server browser-tools created.").is_visible()
            row = _row(page, "mcp-servers-table", "browser-tools")
            cells = row.locator("td").all_inner_texts()
            assert cells[:7] == ["Browser tools", "http", "http://127.0.0.1:9/mcp", "healthy", "yes", "0.25",
                                 "Authorization: Bear…6810"]
            assert SECRET not in page.content()
            _shot(page, "mcp-1-server-added")

            _mark_failing(gateway, "browser-tools")
            page.reload()
            row = _row(page, "mcp-servers-table", "browser-tools")
            assert row.locator(".mcp-health").inner_text() == "unhealthy"
            assert f"{MCP_BREAKER_PROFILE.failure_threshold} failures in a row" in row.locator("td").nth(3).inner_text()

            row.get_by_text("Edit").click()
            edit = page.get_by_role("form", name="Edit MCP server browser-tools")
            edit.get_by_label("Timeout in seconds").fill("7")
            edit.get_by_role("button", name="Save server browser-tools").click()
            assert page.get_by_role("status").filter(has_text="MCP server browser-tools saved.").is_visible()

            access = page.get_by_role("form", name="MCP access of team mcp-browser")
            access.get_by_label("Access of team mcp-browser").fill("browser-tools: lookup_ticket, close_ticket")
            access.get_by_role("button", name="Save access of team mcp-browser").click()
            assert page.get_by_role("status").filter(has_text="MCP access of team mcp-browser saved.").is_visible()
            assert _row(page, "mcp-access-table", "mcp-browser").locator(".mcp-access").inner_text() == \
                "browser-tools: close_ticket, lookup_ticket"
            _shot(page, "mcp-2-access")

            _record_call(gateway, "browser-tools")
            page.reload()
            call = _row(page, "mcp-calls-table", "lookup_ticket").locator("td").all_inner_texts()
            assert call[1:] == ["key-browser", "mcp-browser", "browser-tools", "tools/call", "lookup_ticket",
                                "ok", "45.6", "20 / 321", "0.25"]
            _shot(page, "mcp-3-calls")

            _row(page, "mcp-servers-table", "browser-tools").get_by_role(
                "button", name="Delete server browser-tools").click()
            # The confirmation dialog comes first: wait for the page the post lands on.
            page.get_by_role("status").filter(has_text="MCP server browser-tools deleted.").wait_for(timeout=10_000)
            assert _row(page, "mcp-servers-table", "browser-tools").count() == 0
        finally:
            browser.close()
    assert not errors, errors
    try:
        assert api.get("/api/mcp/servers/browser-tools").status_code == 404
        actions = [e["action"] for e in api.get("/api/audit", params={"target": "browser-tools"}).json()["entries"]]
        assert sorted(actions) == ["mcp_servers.create", "mcp_servers.delete", "mcp_servers.update"]
    finally:
        api.close()

"""Settings API (general, proxy + test, IP filter), the edge's enforcement of the IP filter from
the snapshot, and the audit log (rows for each change, pagination, filters, retention)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from omniroute.config.snapshot import load_snapshot
from omniroute_admin.features import maintenance
from omniroute_edge.ip_filter import IpFilterMiddleware
from tests.integration.admin_app import Admin, running_admin


@pytest.fixture(scope="module")
async def admin(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Admin]:
    async with running_admin(tmp_path_factory.mktemp("admin")) as running:
        yield running


async def test_general_settings_merge_validate_and_reach_the_snapshot(admin: Admin) -> None:
    defaults = (await admin.client.get("/api/settings")).json()
    assert defaults["require_login"] is True and defaults["audit_retention_days"] == 90
    changed = await admin.client.put("/api/settings", json={"instance_name": "Acme AI", "backup_keep": 3})
    assert changed.status_code == 200 and changed.json()["backup_interval_hours"] == 24
    for bad in ({"backup_keep": 0}, {"audit_retention_days": "x"}, {"nonsense": 1}):
        answer = await admin.client.put("/api/settings", json=bad)
        assert answer.status_code == 400 and answer.json()["error"]["message"], bad
    snapshot = await load_snapshot(admin.settings.database_url, None)
    assert snapshot.settings["general"]["instance_name"] == "Acme AI"


async def _fake_proxy(kind: str) -> tuple[asyncio.Server, list[bytes]]:
    """A local proxy that accepts the handshake (HTTP CONNECT or SOCKS5 with user/password)."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if kind == "http":
            head = await reader.readuntil(b"\r\n\r\n")
            seen.append(head)
            ok = b"Proxy-Authorization: Basic dTpzM2NyZXQ=" in head   # u:s3cret
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n" if ok else
                         b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
        else:
            _, count = await reader.readexactly(2)
            methods = await reader.readexactly(count)
            seen.append(methods)
            writer.write(b"\x05\x02")
            _, ulen = await reader.readexactly(2)
            user = await reader.readexactly(ulen)
            plen = (await reader.readexactly(1))[0]
            password = await reader.readexactly(plen)
            seen.append(user + b":" + password)
            writer.write(b"\x01\x00")
            request = await reader.readexactly(4)
            host_len = (await reader.readexactly(1))[0]
            seen.append(request + await reader.readexactly(host_len + 2))
            writer.write(b"\x05\x00\x00\x01" + bytes(4) + b"\x00\x00")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, seen


async def test_proxy_settings_encrypt_passwords_and_the_test_speaks_http_and_socks5(admin: Admin) -> None:
    http_proxy, http_seen = await _fake_proxy("http")
    socks_proxy, socks_seen = await _fake_proxy("socks5")
    http_port = http_proxy.sockets[0].getsockname()[1]
    socks_port = socks_proxy.sockets[0].getsockname()[1]
    try:
        body = {"global": {"url": f"http://u:s3cret@127.0.0.1:{http_port}"},
                "providers": {"openai": {"url": f"socks5://u:s3cret@127.0.0.1:{socks_port}"}},
                "connections": {"openai:main": {"url": "socks5h://10.9.9.9:1080", "enabled": False}}}
        stored = await admin.client.put("/api/settings/proxy", json=body)
        assert stored.status_code == 200, stored.text
        assert "s3cret" not in stored.text and "u:…@127.0.0.1" in stored.json()["global"]["url"]
        async with admin.app.state.admin.pool.connection() as conn:
            raw = await (await conn.execute(
                "SELECT value::text FROM admin_settings WHERE key = 'proxy'")).fetchone()
        assert raw is not None and "s3cret" not in raw[0] and "password_enc" in raw[0]
        # Sending the masked answer back keeps the stored passwords.
        again = await admin.client.put("/api/settings/proxy", json=stored.json())
        assert again.status_code == 200
        ok = await admin.client.post("/api/settings/proxy/test", json={"scope": "global",
                                                                       "target": "example.com:443"})
        assert ok.json()["ok"] is True, ok.text
        assert b"CONNECT example.com:443" in http_seen[-1]
        socks = await admin.client.post("/api/settings/proxy/test", json={
            "scope": "provider:openai", "target": "example.com:443"})
        assert socks.json()["ok"] is True, socks.text
        assert socks_seen[1] == b"u:s3cret" and b"example.com" in socks_seen[2]
        refused = await admin.client.post("/api/settings/proxy/test", json={
            "url": f"http://wrong:creds@127.0.0.1:{http_port}", "target": "example.com:443"})
        assert refused.json()["ok"] is False and "407" in refused.json()["error"]
        dead = await admin.client.post("/api/settings/proxy/test", json={
            "url": "socks5://127.0.0.1:1", "target": "example.com:443", "timeout_s": 2})
        assert dead.json()["ok"] is False
    finally:
        http_proxy.close()
        socks_proxy.close()
    bad: dict[str, Any]
    for bad in ({"global": {"url": "ftp://x:1"}}, {"global": {"url": "http://nohost"}}, {"bogus": {}}):
        assert (await admin.client.put("/api/settings/proxy", json=bad)).status_code == 400, bad
    missing = await admin.client.post("/api/settings/proxy/test", json={"scope": "provider:none"})
    assert missing.status_code == 404
    gopher = await admin.client.post("/api/settings/proxy/test", json={"url": "gopher://x:1"})
    assert gopher.status_code == 400


async def test_ip_filter_validates_refuses_self_lockout_and_normalises(admin: Admin) -> None:
    bad = await admin.client.put("/api/settings/ip-filter", json={"allowlist": ["10.0.0.999/8"]})
    assert bad.status_code == 400 and "10.0.0.999/8" in bad.json()["error"]["message"]
    lockout = await admin.client.put("/api/settings/ip-filter",
                                     json={"enabled": True, "allowlist": ["10.0.0.0/8"]})
    assert lockout.status_code == 409 and "127.0.0.1" in lockout.json()["error"]["message"]
    ok = await admin.client.put("/api/settings/ip-filter", json={
        "enabled": True, "allowlist": ["127.0.0.1", "10.1.2.3/8"], "blocklist": ["10.66.0.0/16"],
        "trusted_proxy_header": "X-Forwarded-For", "trusted_proxies": ["192.0.2.0/24"]})
    assert ok.status_code == 200 and ok.json()["allowlist"] == ["127.0.0.1/32", "10.0.0.0/8"]
    assert (await admin.client.get("/api/settings/ip-filter")).json()["blocklist"] == ["10.66.0.0/16"]


@dataclass
class _Holder:
    current: Any


@dataclass
class _Edge:
    config: _Holder
    seen: list[str] = field(default_factory=list)


async def test_the_edge_enforces_the_stored_ip_filter(admin: Admin) -> None:
    """The admin's document → the snapshot → the edge middleware (the real classes, no stack)."""
    await admin.client.put("/api/settings/ip-filter", json={
        "enabled": True, "allowlist": ["127.0.0.1", "10.0.0.0/8"], "blocklist": ["10.66.0.0/16"],
        "trusted_proxy_header": "x-forwarded-for", "trusted_proxies": ["192.0.2.0/24"],
        "apply_to_api": True, "apply_to_dashboard": False})
    edge = _Edge(config=_Holder(await load_snapshot(admin.settings.database_url, None)))

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"client": request.headers.get("x-omniroute-client-ip")})

    app = Starlette(routes=[Route("/v1/models", echo), Route("/dashboard", echo), Route("/healthz", echo)])
    app.state.edge = edge
    app.add_middleware(IpFilterMiddleware)

    async def get(path: str, peer: str, **headers: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(peer, 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
            return await client.get(path, headers=headers)

    assert (await get("/v1/models", "10.1.1.1")).json() == {"client": "10.1.1.1"}
    blocked = await get("/v1/models", "10.66.1.1")
    assert blocked.status_code == 403 and blocked.json()["error"]["code"] == "ip_not_allowed"
    assert (await get("/v1/models", "203.0.113.5")).status_code == 403
    # Behind a trusted proxy, the forwarded address decides; a forged hop on the left does not.
    via = await get("/v1/models", "192.0.2.10", **{"x-forwarded-for": "10.66.0.1, 10.2.2.2"})
    assert via.status_code == 200 and via.json() == {"client": "10.2.2.2"}
    assert (await get("/v1/models", "192.0.2.10", **{"x-forwarded-for": "203.0.113.5"})).status_code == 403
    # An untrusted peer's header is ignored, and a client cannot set the admin's header itself.
    spoof = await get("/v1/models", "203.0.113.5", **{"x-forwarded-for": "10.2.2.2",
                                                       "x-omniroute-client-ip": "127.0.0.1"})
    assert spoof.status_code == 403
    assert (await get("/dashboard", "203.0.113.5")).status_code == 200    # apply_to_dashboard off
    assert (await get("/healthz", "203.0.113.5")).status_code == 200      # probes always pass
    await admin.client.put("/api/settings/ip-filter", json={"enabled": False})
    edge.config.current = await load_snapshot(admin.settings.database_url, None)
    assert (await get("/v1/models", "203.0.113.5")).status_code == 200


async def test_every_change_is_audited_and_the_log_pages_and_filters(admin: Admin) -> None:
    created = await admin.client.post("/api/providers", json={
        "id": "audited", "type": "openai", "connections": [{"name": "a", "api_key": "sk-aaaaaaaaaaaaaaaa"}]})
    assert created.status_code == 201
    spec = {"id": "audited", "type": "openai", "enabled": False, "connections": [{"name": "a"}]}
    assert (await admin.client.put("/api/providers/audited", json=spec)).status_code == 200
    key = (await admin.client.post("/api/keys", json={"name": "audited-key"})).json()
    assert (await admin.client.delete(f"/api/keys/{key['id']}")).status_code == 200
    assert (await admin.client.delete("/api/providers/audited")).status_code == 200

    log = (await admin.client.get("/api/compliance/audit-log", params={"action": "providers.*"})).json()
    actions = [e["action"] for e in log["entries"]]
    assert actions == ["providers.delete", "providers.update", "providers.create"]
    update = log["entries"][1]
    assert update["before_digest"] and update["after_digest"]
    assert update["before_digest"] != update["after_digest"]
    assert update["actor"] == "admin" and update["ip"] == "127.0.0.1" and update["request_id"]
    assert "sk-aaaa" not in str(log)
    keys = (await admin.client.get("/api/compliance/audit-log", params={"target": key["id"]})).json()
    assert [e["action"] for e in keys["entries"]] == ["keys.delete", "keys.create"]
    page = (await admin.client.get("/api/compliance/audit-log", params={"limit": 2, "offset": 1})).json()
    assert len(page["entries"]) == 2 and page["total"] >= 7 and page["offset"] == 1
    rid = await admin.client.put("/api/settings", json={}, headers={"x-request-id": "req-audit-1"})
    assert rid.headers["x-request-id"] == "req-audit-1"
    latest = (await admin.client.get("/api/compliance/audit-log", params={"limit": 1})).json()["entries"][0]
    assert latest["request_id"] == "req-audit-1"
    for bad in ({"limit": 0}, {"limit": 10_000}, {"since": "yesterday"}):
        answer = await admin.client.get("/api/compliance/audit-log", params=bad)
        assert answer.status_code == 400 and answer.json()["error"]["message"], bad


async def test_routing_setting_changes_are_audited(admin: Admin) -> None:
    """Every routing write (resilience, rate limit, policies, system prompt, thinking budget,
    fallback model) leaves an audit row with the new value's digest."""
    writes = [("put", "/api/resilience", {}), ("put", "/api/rate-limit", {}),
              ("post", "/api/policies", {"name": "audit-policy", "block_models": ["x/y"]}),
              ("put", "/api/settings/system-prompt", {"prefix": "Be brief."}),
              ("put", "/api/settings/thinking-budget", {"mode": "passthrough"}),
              ("put", "/api/routing/fallback-model", {"model": None})]
    for method, path, body in writes:
        answer = await getattr(admin.client, method)(path, json=body)
        assert answer.status_code == 200, (path, answer.text)
    assert (await admin.client.delete("/api/policies/audit-policy")).status_code == 200
    log = (await admin.client.get("/api/compliance/audit-log", params={"action": "routing.*"})).json()
    actions = [e["action"] for e in log["entries"]]
    assert actions == ["routing.policies", "routing.fallback_model", "routing.thinking_budget",
                       "routing.system_prompt", "routing.policies", "routing.rate_limit", "routing.resilience"]
    assert all(e["after_digest"] for e in log["entries"] if e["target"] != "fallback_model")


async def test_audit_retention_prunes_old_rows(admin: Admin) -> None:
    async with admin.app.state.admin.pool.connection() as conn:
        await conn.execute("INSERT INTO audit_log (at, actor, action) VALUES "
                           "(now() - interval '400 days', 'admin', 'ancient.change')")
    await admin.client.put("/api/settings", json={"audit_retention_days": 365, "backup_interval_hours": 0})
    done = await maintenance.run_once(admin.app.state.admin)
    assert done["audit_pruned"] == 1
    left = (await admin.client.get("/api/compliance/audit-log", params={"action": "ancient.change"})).json()
    assert left["total"] == 0


async def test_security_headers_on_every_answer(admin: Admin) -> None:
    answer = await admin.client.get("/api/settings")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["cache-control"] == "no-store"



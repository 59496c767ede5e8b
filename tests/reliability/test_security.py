"""No one let in: the authorisation matrix of every management and client route, key isolation
and revocation across replicas, secrets at rest and in logs, SSRF, login throttling, CSRF and
the dashboard's security headers."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from omniroute.devstack.stack import free_port
from omniroute.secrets import hash_api_key
from tests.reliability.checks import assert_no_leak
from tests.reliability.cluster import _wait_ready
from tests.reliability.conftest import API_KEY, OTHER_KEY, UPSTREAM_SECRETS
from tests.support import Gateway

pytestmark = pytest.mark.xdist_group("reliability")

# Reachable without a session, on purpose: logging in and out, whether login is required (the
# login page asks), and the OAuth provider's redirect back (it carries its own signed state).
PUBLIC = {("POST", "/api/auth/login"), ("POST", "/api/auth/logout"), ("GET", "/api/settings/require-login"),
          ("GET", "/api/init"), ("GET", "/api/oauth/{provider_id}/{action}"),
          # Single sign-on: the way in for people without a session (404 while OIDC is off).
          ("GET", "/api/auth/oidc/login"), ("GET", "/api/auth/oidc/callback")}


def admin_operations() -> list[tuple[str, str]]:
    from omniroute.settings import Settings
    from omniroute_admin.app import create_app

    document = create_app(Settings()).openapi()
    return sorted((method.upper(), path) for path, methods in document["paths"].items()
                  for method in methods if method in ("get", "post", "put", "patch", "delete"))


def dashboard_operations() -> list[tuple[str, str]]:
    from omniroute_admin import dashboard

    routes: list[Any] = dashboard.router.routes   # every one has a path (APIRoute)
    return sorted((method, route.path) for route in routes
                  for method in getattr(route, "methods", ()) if method != "HEAD"
                  and route.path not in ("/dashboard/login", "/dashboard/static/{name}"))


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path.replace("{model_action}", "mock-text:generateContent"))


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=20) as http:
        yield http


def login(gateway: Gateway) -> httpx.Client:
    http = httpx.Client(base_url=gateway.url, timeout=20)
    response = http.post("/api/auth/login", json={"password": gateway.admin_password})
    assert response.status_code == 200, response.text
    http.headers["x-csrf-token"] = response.json()["csrfToken"]
    return http


# --------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize(("method", "path"), [op for op in admin_operations() if op not in PUBLIC])
def test_every_management_route_needs_a_session(client: httpx.Client, method: str, path: str) -> None:
    """Through the public port (the edge's /api proxy), with no session and with an API key in
    place of one (a client key is not an admin credential)."""
    for headers in ({}, {"authorization": f"Bearer {API_KEY}"}):
        response = client.request(method, concrete(path), headers=headers, json={})
        # /api/cloud/config takes a peer's sync token instead of a session: 404 while sync is
        # not initialised (nothing to reach), 401 without the token once it is.
        allowed = (401, 403, 404) if path == "/api/cloud/config" else (401, 403)
        assert response.status_code in allowed, (method, path, headers, response.status_code,
                                                     response.text[:200])
        assert_no_leak(response.content)


@pytest.mark.parametrize(("method", "path"), dashboard_operations())
def test_every_dashboard_page_needs_a_session(client: httpx.Client, method: str, path: str) -> None:
    response = client.request(method, concrete(path), follow_redirects=False)
    if response.status_code in (302, 303, 307):
        assert response.headers["location"].split("?")[0].endswith("/dashboard/login"), response.headers
    else:
        assert response.status_code in (401, 403), (method, path, response.status_code)


def test_every_client_route_needs_a_valid_key(client: httpx.Client) -> None:
    from omniroute.settings import Settings
    from omniroute_edge.app import create_app

    document = create_app(Settings()).openapi()
    checked = 0
    for path, methods in document["paths"].items():
        for method in methods:
            for headers in ({}, {"authorization": "Bearer sk-omni-not-a-key-000000000000"},
                            {"x-api-key": "wrong"}, {"x-goog-api-key": "wrong"}):
                response = client.request(method.upper(), concrete(path), headers=headers,
                                          json={"model": "good/mock-text", "messages": []})
                assert response.status_code == 401, (method, path, headers, response.status_code)
                checked += 1
    assert checked >= 60


def test_an_api_key_reaches_no_usage_or_logs(client: httpx.Client) -> None:
    """What applies: usage and request logs are served only by the management API (admin
    session); no client route returns them. A key holder — any key — gets 401 there."""
    for path in ("/api/usage", "/api/usage/logs", "/api/logs", "/api/keys", "/api/audit"):
        for key in (API_KEY, OTHER_KEY):
            for headers in ({"authorization": f"Bearer {key}"}, {"x-api-key": key}):
                assert client.get(path, headers=headers).status_code in (401, 403, 404), path


def test_a_revoked_key_stops_working_on_every_edge_within_a_second(gateway: Gateway,
                                                                   client: httpx.Client) -> None:
    """A second edge replica beside the stack's own; the key is revoked through the admin API."""
    port = free_port()
    second = gateway.stack.start_service("edge-security", "omniroute_edge", env={"OMNIROUTE_PORT": str(port)})
    try:
        _wait_ready(f"http://127.0.0.1:{port}/readyz", second.process)
        edges = [client, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)]
        admin = login(gateway)
        created = admin.post("/api/keys", json={"name": "short-lived"})
        assert created.status_code == 201, created.text
        key, key_id = created.json()["key"], created.json()["id"]
        body = {"model": "good/mock-text", "messages": [{"role": "user", "content": "hi"}]}
        auth = {"authorization": f"Bearer {key}"}
        deadline = time.monotonic() + 5   # a new key reaches every replica on config.changed
        while not all(e.post("/v1/chat/completions", json=body, headers=auth).status_code == 200
                      for e in edges):
            assert time.monotonic() < deadline, "the new key never worked"
            time.sleep(0.05)
        revoked = admin.delete(f"/api/keys/{key_id}")
        assert revoked.status_code in (200, 204), revoked.text
        revoked_at = time.monotonic()
        pending = set(range(len(edges)))
        while pending:
            for index in list(pending):
                if edges[index].post("/v1/chat/completions", json=body, headers=auth).status_code == 401:
                    pending.discard(index)
            assert time.monotonic() - revoked_at < 1.0, f"edges {pending} still accept the revoked key"
        edges[1].close()
        admin.close()
    finally:
        second.process.terminate()
        second.process.wait(20)
        gateway.stack.processes.remove(second)


# --------------------------------------------------------------------------- secrets


def test_keys_are_stored_as_hashes_and_credentials_encrypted(gateway: Gateway) -> None:
    dump = "\n".join(str(row) for table in ("api_keys", "connections", "providers")
                     for row in gateway.rows(f"SELECT * FROM {table}"))
    for key in (API_KEY, OTHER_KEY):
        assert key not in dump
        assert hash_api_key(key) in dump
    for secret in UPSTREAM_SECRETS.values():
        assert secret not in dump
    encrypted = [row[0] for row in gateway.rows("SELECT api_key_enc FROM connections")]
    assert encrypted and all(value and value.startswith("gAAAAA") for value in encrypted)  # Fernet


def test_no_secret_in_any_log_or_error_body(gateway: Gateway, client: httpx.Client) -> None:
    """Runs after the fault and bad-input tests of this worker (same stack): every error path
    they took has written its logs by now."""
    for model in ("p-mock-500/mock-500", "p-mock-429/mock-429", "p-fault-badjson/fault-badjson"):
        response = client.post("/v1/chat/completions", headers={"authorization": f"Bearer {API_KEY}"},
                               json={"model": model, "messages": [{"role": "user", "content": "x"}]})
        for secret in (*UPSTREAM_SECRETS.values(), API_KEY, gateway.settings.master_key):
            assert secret not in response.text
    secrets = [*UPSTREAM_SECRETS.values(), API_KEY, OTHER_KEY, gateway.settings.master_key,
               gateway.admin_password]
    logs = list(gateway.log_dir.glob("*.log"))
    assert len(logs) >= 5
    for log_file in logs:
        text = log_file.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, f"{secret[:12]}… in {log_file.name}"


# --------------------------------------------------------------------------- login, CSRF, headers


def test_state_changing_calls_need_the_csrf_token(gateway: Gateway) -> None:
    admin = login(gateway)
    token = admin.headers.pop("x-csrf-token")
    try:
        for method, path in (("POST", "/api/keys"), ("DELETE", "/api/keys/nope"),
                             ("POST", "/dashboard/keys"), ("POST", "/dashboard/settings/general")):
            response = admin.request(method, path, json={"name": "csrf-test"}, follow_redirects=False)
            assert response.status_code == 403, (method, path, response.status_code)
            wrong = admin.request(method, path, json={"name": "csrf-test"},
                                  headers={"x-csrf-token": token[::-1]}, follow_redirects=False)
            assert wrong.status_code == 403, (method, path, wrong.status_code)
    finally:
        admin.close()


def test_dashboard_sets_csp_and_security_headers(client: httpx.Client) -> None:
    for path in ("/dashboard/login", "/api/auth/login"):
        response = client.get(path)
        headers = response.headers
        csp = headers.get("content-security-policy", "")
        assert "default-src 'self'" in csp
        assert "unsafe-inline" not in csp.split("script-src")[-1].split(";")[0]
        assert "frame-ancestors 'none'" in csp or headers.get("x-frame-options") == "DENY"
        assert headers.get("x-content-type-options") == "nosniff"
        assert headers.get("referrer-policy")


def test_login_brute_force_is_throttled_whatever_ip_is_claimed(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        statuses = []
        for attempt in range(15):
            spoof = {"x-forwarded-for": f"10.0.0.{attempt}", "x-omniroute-client-ip": f"10.1.0.{attempt}",
                     "x-real-ip": f"10.2.0.{attempt}"}
            statuses.append(http.post("/api/auth/login", json={"password": f"wrong-{attempt}"},
                                      headers=spoof).status_code)
        assert statuses[0] == 401
        assert 429 in statuses, statuses
        # Even the right password is refused while locked out.
        right = http.post("/api/auth/login", json={"password": gateway.admin_password})
        assert right.status_code == 429
        assert right.headers.get("retry-after")
    # Lift the lockout so that later tests of this worker can log in again.
    redis.Redis.from_url(gateway.settings.redis_url).delete(f"{gateway.settings.env}:login-failures:127.0.0.1")

"""Gateway refusals are audit events: every kind the edge (an unknown, revoked or expired key;
the IP filter) or the router (the budget, a rate limit, a policy's block, a provider or a model
not allowed) refuses is published on the bus and kept by accounting as exactly one audit_log
row, queryable through /api/audit by actor (`key:<id>`) and team."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openai
import pytest

from tests.mocks.server import MockServer
from tests.support import Gateway, running_gateway

pytestmark = pytest.mark.xdist_group("refusal-audit")

TEAM = "alpha"
KEYS = {name: f"sk-omni-{name}-{'0' * (24 - len(name))}" for name in
        ("revoked", "expired", "budget", "limited", "blocked", "provider", "models", "ipblocked")}
UNKNOWN = "sk-omni-nobody-0000000000000000"


@pytest.fixture(scope="module")
def gateway(mock_upstream: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    base = f"{mock_upstream.url}/v1"
    # Past by the time the stack is up (it takes longer than this to start).
    expiring = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    keys: list[dict[str, Any]] = [{"name": name, "key": secret, "team": TEAM} for name, secret in KEYS.items()]
    extra: dict[str, dict[str, Any]] = {"expired": {"expires_at": expiring},
             "budget": {"budget": {"limit": 0.000001, "period": "daily"}},
             "limited": {"limits": {"rpm": 1}},
             "models": {"allowed_models": ["myanthropic/mock-text"]}}
    for key in keys:
        key.update(extra.get(key["name"], {}))
    config = {
        "providers": [
            {"id": "myopenai", "type": "openai", "base_url": base, "models": ["gpt-4o-mini"],
             "connections": [{"name": "primary", "api_key": "sk-upstream-1"}]},
            {"id": "myanthropic", "type": "anthropic", "base_url": base, "models": ["mock-text"],
             "connections": [{"name": "primary", "api_key": "sk-ant-upstream"}]},
        ],
        "teams": [{"id": TEAM, "name": "Alpha"}],
        "keys": keys,
    }
    with running_gateway(tmp_path_factory.mktemp("refusals"), config, api_key=KEYS["budget"]) as running:
        yield running


@pytest.fixture(scope="module")
def admin(gateway: Gateway) -> Iterator[httpx.Client]:
    client = gateway.admin_client()
    yield client
    client.close()


def _key_ids(admin: httpx.Client) -> dict[str, str]:
    listed = admin.get("/api/keys")
    assert listed.status_code == 200, listed.text
    return {key["name"]: key["id"] for key in listed.json()["keys"]}


def _chat(gateway: Gateway, key: str, model: str = "myopenai/gpt-4o-mini") -> int:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=20)
    try:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                       max_tokens=16)
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


def _until(status: int, attempt: Any, timeout: float = 10.0) -> None:
    """Config changes reach edges and routers through config.changed: retry until they did."""
    deadline = time.monotonic() + timeout
    while (got := attempt()) != status:
        assert time.monotonic() < deadline, f"still {got}, expected {status}"
        time.sleep(0.2)


def _refusals(admin: httpx.Client, actor: str, team: str, timeout: float = 15.0) -> list[dict[str, Any]]:
    """The audit rows of gateway refusals by `actor` about `team`, once accounting kept one."""
    deadline = time.monotonic() + timeout
    while True:
        answer = admin.get("/api/audit", params={"actor": actor, "team": team, "action": "gateway.*"})
        assert answer.status_code == 200, answer.text
        rows: list[dict[str, Any]] = answer.json()["entries"]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


def test_every_refusal_kind_is_one_audit_row(gateway: Gateway, admin: httpx.Client) -> None:
    ids = _key_ids(admin)
    started = datetime.now(UTC) - timedelta(seconds=1)
    assert admin.post(f"/api/keys/{ids['revoked']}/revoke").status_code == 200
    _until(401, lambda: _chat(gateway, KEYS["revoked"]))
    assert _chat(gateway, KEYS["expired"]) == 401
    assert _chat(gateway, UNKNOWN) == 401
    assert _chat(gateway, KEYS["budget"]) == 429
    assert _chat(gateway, KEYS["limited"]) == 200
    assert _chat(gateway, KEYS["limited"]) == 429
    assert _chat(gateway, KEYS["models"]) == 403
    for policy in ({"name": "no-openai", "keys": ["blocked"], "block_models": ["myopenai/*"]},
                   {"name": "anthropic-only", "keys": ["provider"], "allow_providers": ["myanthropic"]}):
        assert admin.post("/api/policies", json=policy).status_code == 200
    _until(403, lambda: _chat(gateway, KEYS["blocked"]))
    _until(403, lambda: _chat(gateway, KEYS["provider"]))
    # Last: the IP filter refuses every client request from here on (not the management API).
    ip_filter = {"enabled": True, "blocklist": ["127.0.0.0/8"], "apply_to_dashboard": False}
    assert admin.put("/api/settings/ip-filter", json=ip_filter).status_code == 200
    _until(403, lambda: _chat(gateway, KEYS["ipblocked"]))

    expected = {"revoked": "key_revoked", "expired": "key_expired", "budget": "budget_exhausted",
                "limited": "rate_limit_exceeded", "models": "model_not_allowed", "blocked": "model_blocked",
                "provider": "provider_not_allowed", "ipblocked": "ip_blocked"}
    for name, reason in expected.items():
        rows = _refusals(admin, f"key:{ids[name]}", TEAM)
        every = admin.get("/api/audit", params={"action": "gateway.*", "limit": 100}).json()["entries"]
        assert [row["action"] for row in rows] == [f"gateway.refused.{reason}"], (name, rows, every)
        [row] = rows
        assert row["team_id"] == TEAM and row["detail"]["reason"] == reason and row["request_id"]
        assert row["detail"]["status"] in (401, 403, 429)
        assert datetime.fromisoformat(row["at"]) >= started
    unknown = _refusals(admin, "key:unknown", "")
    assert [row["detail"]["reason"] for row in unknown] == ["unknown_key"]
    assert unknown[0]["detail"]["route"] == "/v1/chat/completions"
    # The router's rows name the model asked for; the edge's the route.
    budget = _refusals(admin, f"key:{ids['budget']}", TEAM)[0]
    assert (budget["target"], budget["detail"]["service"]) == ("myopenai/gpt-4o-mini", "router")
    # By team alone: every refusal above of a team key (the unknown key has no team).
    by_team = admin.get("/api/audit", params={"team": TEAM, "action": "gateway.*", "limit": 100}).json()
    assert by_team["total"] == len(expected)
    # By time: nothing of this before the test started.
    before = admin.get("/api/audit", params={"team": TEAM, "action": "gateway.*",
                                             "until": started.isoformat()}).json()
    assert before["total"] == 0

"""The edge's key check (omniroute_edge.auth), against a snapshot in memory: each state of a key
refused with its own message and reason, at the moment it applies (no reload needed for an
expiry or the end of a rotation's grace period)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from starlette.requests import Request

from omniroute.config.snapshot import ApiKey, ConfigSnapshot
from omniroute.secrets import hash_api_key
from omniroute_edge.auth import AuthError, authenticate, refusal_of

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
KEY = ApiKey(id="key_1", name="k", enabled=True, allowed_models=None, limits={}, budget=None,
             expires_at=None, team_id="research")


@pytest.mark.parametrize(("key", "reason", "message"), [
    (replace(KEY, revoked_at=NOW - timedelta(seconds=1)), "key_revoked", "API key revoked"),
    (replace(KEY, expires_at=NOW), "key_expired", "API key expired"),
    (replace(KEY, enabled=False), "key_disabled", "API key disabled"),
    (replace(KEY, grace_until=NOW), "key_rotated", "Incorrect API key provided."),
    # A revoked key's old secret is still "unknown": nothing about the key leaks through it.
    (replace(KEY, grace_until=NOW - timedelta(seconds=1), revoked_at=NOW), "key_rotated",
     "Incorrect API key provided."),
])
def test_each_refused_state_has_its_reason_and_message(key: ApiKey, reason: str, message: str) -> None:
    refused = refusal_of(key, NOW)
    assert refused is not None and (refused.reason, refused.message, refused.key) == (reason, message, key)


@pytest.mark.parametrize("key", [
    KEY, replace(KEY, expires_at=NOW + timedelta(seconds=1)), replace(KEY, grace_until=NOW + timedelta(seconds=1)),
])
def test_usable_keys_pass(key: ApiKey) -> None:
    assert refusal_of(key, NOW) is None


def _request(headers: dict[str, str]) -> Request:
    return Request({"type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"",
                    "headers": [(k.encode(), v.encode()) for k, v in headers.items()]})


def test_authenticate_reads_the_snapshot_only() -> None:
    snapshot = ConfigSnapshot(keys_by_hash={hash_api_key("sk-live"): KEY,
                                            hash_api_key("sk-gone"): replace(KEY, revoked_at=NOW)})
    assert authenticate(_request({"authorization": "Bearer sk-live"}), snapshot, True) is KEY
    with pytest.raises(AuthError) as revoked:
        authenticate(_request({"x-api-key": "sk-gone"}), snapshot, True)
    assert (revoked.value.reason, revoked.value.message) == ("key_revoked", "API key revoked")
    with pytest.raises(AuthError) as unknown:
        authenticate(_request({"authorization": "Bearer sk-other"}), snapshot, True)
    assert (unknown.value.reason, unknown.value.key) == ("unknown_key", None)
    with pytest.raises(AuthError) as missing:
        authenticate(_request({}), snapshot, True)
    assert missing.value.reason == "missing_key"
    assert authenticate(_request({}), snapshot, False) is None

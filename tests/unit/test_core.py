"""Pure pieces of the core: secrets, settings, model resolution, error classification."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import ValidationError

from omniroute.analytics_store import percentile
from omniroute.config.snapshot import ApiKey, ConfigSnapshot, Connection, Provider
from omniroute.config.spec import ConfigFile
from omniroute.formats import FormatError, openai_chat
from omniroute.secrets import Crypto, generate_api_key, generate_master_key, hash_api_key, mask
from omniroute.settings import Settings
from omniroute_executor.upstream_errors import classify_status, retry_after_seconds, transport_error
from omniroute_router.errors import RoutingError
from omniroute_router.selection.policy import check_access
from omniroute_router.selection.resolve import enabled_connections, resolve, targets


def test_crypto_round_trip_and_key_independence() -> None:
    crypto = Crypto(generate_master_key())
    token = crypto.encrypt("sk-secret")
    assert "sk-secret" not in token and crypto.decrypt(token) == "sk-secret"
    assert Crypto("a passphrase, not a fernet key").decrypt(
        Crypto("a passphrase, not a fernet key").encrypt("x")) == "x"
    with pytest.raises(ValueError):
        Crypto(generate_master_key()).decrypt(token)
    with pytest.raises(ValueError):
        Crypto("")


def test_api_keys_hash_and_mask() -> None:
    key = generate_api_key()
    assert key.startswith("sk-omni-") and len(key) > 40
    assert hash_api_key(key) == hash_api_key(key) != hash_api_key(key + "x")
    assert mask("sk-abcdefghijklmnop") == "sk-a…mnop" and mask(None) is None


def test_executor_address_by_family() -> None:
    settings = Settings(executor_addrs="openai=a:1, anthropic=b:2", executor_addr="d:9")
    assert settings.executor_address("openai") == "a:1"
    assert settings.executor_address("anthropic") == "b:2"
    assert settings.executor_address("gemini") == "d:9"
    assert Settings(env="t-1.x").stream_name == "T_1_X_EVENTS"


def snapshot() -> ConfigSnapshot:
    connections = (
        Connection("p:b", "p", "b", "k2", priority=5, enabled=True, settings={}),
        Connection("p:a", "p", "a", "k1", priority=1, enabled=True, settings={}),
        Connection("p:c", "p", "c", "k3", priority=0, enabled=False, settings={}),
    )
    provider = Provider("myoai", "openai", "openai", "http://x/v1", ("gpt",), True, {}, connections)
    return ConfigSnapshot(providers={"myoai": provider})


def test_resolve_by_id_and_prefix() -> None:
    assert targets(resolve(snapshot(), "myoai/gpt-4o"))[0].model == "gpt-4o"
    assert targets(resolve(snapshot(), "oai/gpt-4o"))[0].provider.id == "myoai"  # the type's short prefix
    assert targets(resolve(snapshot(), "myoai/org/model-x"))[0].model == "org/model-x"
    for bad, status in (("gpt-4o", 400), ("nope/gpt", 404), ("myoai/", 400)):
        with pytest.raises(RoutingError) as caught:
            resolve(snapshot(), bad)
        assert caught.value.status == status


def test_connections_by_priority_enabled_only() -> None:
    assert [c.name for c in enabled_connections(snapshot().providers["myoai"])] == ["a", "b"]


def test_key_model_allow_list() -> None:
    node = resolve(snapshot(), "myoai/gpt")
    key = ApiKey("k", "k", True, ("myoai/*",), {}, None, None)
    check_access(snapshot(), key, [], "myoai/gpt", node)
    with pytest.raises(RoutingError) as caught:
        check_access(snapshot(), ApiKey("k", "k", True, ("other/x",), {}, None, None), [], "myoai/gpt", node)
    assert caught.value.status == 403


def test_key_expiry() -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    assert not ApiKey("k", "k", True, None, {}, None, past).usable()
    assert not ApiKey("k", "k", False, None, {}, None, None).usable()
    assert ApiKey("k", "k", True, None, {}, None, None).usable()


def test_config_file_rejects_unknown_fields_and_types() -> None:
    with pytest.raises(ValidationError):
        ConfigFile.model_validate({"providers": [{"id": "a", "type": "openai", "typo": 1}]})
    with pytest.raises(ValidationError):
        ConfigFile.model_validate({"providers": [{"id": "a", "type": "nonsense"}]})
    with pytest.raises(ValidationError):
        ConfigFile.model_validate({"providers": [{"id": "a", "type": "openai", "connections": [
            {"name": "x"}, {"name": "x"}]}]})


def test_openai_request_validation() -> None:
    good = {"model": "p/m", "messages": [{"role": "user", "content": "hi"}]}
    assert openai_chat.request_to_canonical(good) == good
    for bad, param in (([], None), ({"messages": good["messages"]}, "model"),
                       ({"model": "p/m", "messages": []}, "messages"),
                       ({"model": "p/m", "messages": ["x"]}, "messages[0]"),
                       ({**good, "stream": "yes"}, "stream")):
        with pytest.raises(FormatError) as caught:
            openai_chat.request_to_canonical(bad)
        assert caught.value.status == 400 and caught.value.param == param


def test_openai_parse_error_is_robust() -> None:
    assert openai_chat.parse_error(429, b'{"error":{"message":"slow down","type":"requests"}}') == \
        ("requests", "slow down")
    assert openai_chat.parse_error(502, b"<html>bad gateway</html>") == ("server_error", "<html>bad gateway</html>")
    assert openai_chat.parse_error(500, b"[1,2]")[0] == "server_error"


def test_upstream_error_classification() -> None:
    headers = httpx.Headers({"retry-after": "7"})
    assert retry_after_seconds(headers) == 7.0
    assert retry_after_seconds(httpx.Headers({"retry-after-ms": "1500"})) == 1.5
    rate_limited = classify_status(429, "requests", "slow", headers, b"{}")
    assert rate_limited.retryable and rate_limited.retry_after_s == 7.0 and rate_limited.code == "rate_limited"
    assert not classify_status(400, "invalid_request_error", "bad", httpx.Headers(), b"").retryable
    assert classify_status(503, "x", "y", httpx.Headers(), b"").retryable
    assert transport_error(httpx.ReadTimeout("t")).status == 504
    assert transport_error(httpx.ConnectError("c")).status == 502


def test_percentile_nearest_rank() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([5.0], 99) == 5.0 and percentile([], 50) == 0.0

"""Redaction of logged payloads (omniroute.redact): secrets masked, base64 summarised, JSON kept."""

from __future__ import annotations

import base64
import json

import pytest

from omniroute.redact import MASK, capped, redact, redact_payload

SECRET = "sk-live-THISISSECRET0123456789"


@pytest.mark.parametrize("secret", [
    SECRET, "sk-proj-abcdefghijklmnop1234", "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv", "sk-omni-0123456789abcdef",
    "AIzaSyA1234567890abcdefghijklmnopqrstu", "ghp_abcdefghijklmnopqrstuvwxyz0123",
    "github_pat_11ABCDEFG0123456789_abcdefghij", "glpat-abcdefghij0123456789",
    "xoxb-1234567890-abcdefghij", "hf_abcdefghijklmnopqrstuvwxyz", "AKIAIOSFODNN7EXAMPLE",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "Z3N1c2VyMTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6",  # an opaque 40+ character token
])
def test_known_key_shapes_are_masked_in_prose_and_json(secret: str) -> None:
    prose = redact(f"my key is {secret}, please keep it")
    assert secret not in prose and MASK in prose and prose.startswith("my key is ")
    body = json.dumps({"messages": [{"role": "user", "content": f"use {secret} now"}]})
    out = redact(body)
    assert secret not in out
    assert json.loads(out)["messages"][0]["content"].startswith("use ")  # still JSON


def test_the_key_prefix_is_kept_for_reading() -> None:
    assert redact(f"key {SECRET}") == f"key sk-{MASK}"


@pytest.mark.parametrize("text", [
    "Authorization: Bearer abcdef0123456789xyz",
    "curl -H 'Authorization: Basic dXNlcjpwYXNzd29yZA=='",
    "x-api-key: 0123456789abcdefshort",
    'headers = {"Authorization": "Token 0123456789abcdef"}',
])
def test_authorization_values_are_masked(text: str) -> None:
    out = redact(text)
    for part in ("abcdef0123456789xyz", "dXNlcjpwYXNzd29yZA", "0123456789abcdefshort", "0123456789abcdef"):
        assert part not in out
    assert MASK in out


@pytest.mark.parametrize(("text", "kept"), [
    ("https://x.example/v1?key=hunter2abc&alt=sse", "alt=sse"),
    ("export OPENAI_API_KEY=plainsecret99", "export OPENAI_API_KEY="),
    ("password = 'correct horse'", "password = '"),
    ("db_password=s3cr3t; next", "; next"),
    ("access_token=abc.def.ghi", "access_token="),
])
def test_assignments_to_secret_names_are_masked(text: str, kept: str) -> None:
    out = redact(text)
    assert kept in out and MASK in out
    for part in ("hunter2abc", "plainsecret99", "correct", "s3cr3t", "abc.def.ghi"):
        assert part not in out


def test_json_fields_named_like_secrets_are_masked_also_when_escaped_in_a_string() -> None:
    body = {"api_key": "plain-value", "client_secret": "cs", "password": "pw",
            "messages": [{"role": "user", "content": json.dumps({"access_token": "tok-123"})}]}
    out = redact(json.dumps(body))
    parsed = json.loads(out)
    assert parsed["api_key"] == parsed["client_secret"] == parsed["password"] == MASK
    assert json.loads(parsed["messages"][0]["content"]) == {"access_token": MASK}


def test_base64_images_become_a_size_note() -> None:
    image = base64.b64encode(bytes(range(256)) * 40).decode()  # 10240 bytes
    body = json.dumps({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}"}}]}],
        "audio": image})
    out = redact(body)
    assert image[:64] not in out and len(out) < 500
    parsed = json.loads(out)
    url = parsed["messages"][0]["content"][1]["image_url"]["url"]
    assert url == "data:image/png;base64,[10240 bytes of base64 data]"
    assert parsed["audio"] == "[10240 bytes of base64 data]"
    assert parsed["messages"][0]["content"][0]["text"] == "what is this?"


def test_ordinary_text_is_left_alone() -> None:
    text = json.dumps({"model": "gpt-4o-mini-2024-07-18", "id": "chatcmpl-abc123",
                       "messages": [{"role": "user", "content": "The task-list has 3 items; a skeleton key "
                                     "opens doors. Tokens: 12. Risk-free!"}],
                       "request_id": "0f8fad5b-d9cb-469f-a165-70867728950e"})
    assert redact(text) == text


def test_capped_cuts_at_the_limit_with_a_marker_and_never_splits_a_character() -> None:
    assert capped("short", 64) == b"short"
    text = "é" * 100_000  # 200 000 bytes
    out = capped(text, 65_536)
    assert len(out) <= 65_536
    decoded = out.decode("utf-8")  # whole characters only
    assert decoded.endswith("…[truncated: 200000 bytes in all]")


def test_redact_payload_redacts_before_cutting() -> None:
    body = ("x " * 40_000 + SECRET).encode()
    out = redact_payload(body, 1024)
    assert len(out) <= 1024 and b"THISISSECRET" not in out
    # A secret straddling the cut is masked whole first, so no prefix of it survives either.
    edge = ("a" * 1000 + " " + SECRET + " tail").encode()
    assert b"THISIS" not in redact_payload(edge, 1030)

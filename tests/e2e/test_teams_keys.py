"""The key lifecycle on the running stack with TWO edges: every change made through the management
API (update in place, expiry, rotation, revocation) holds on both edges within a second of the
API's answer (each edge reloads its snapshot on config.changed), measured. A rotated-out secret
after its grace period and a key past its expiry are refused without any reload: the snapshot
already knows when (grace_until, expires_at). Refusals come in the caller's format, through the
official SDKs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import anthropic
import httpx
import openai
import pytest

from omniroute.devstack.stack import _wait_ready, free_port
from tests.support import Gateway

pytestmark = pytest.mark.xdist_group("gateway")
WITHIN_S = 1.0
MODEL = "myopenai/gpt-4o-mini"


@pytest.fixture(scope="module")
def edges(gateway: Gateway) -> Iterator[list[str]]:
    """The stack's edge and a second replica beside it (same admin, routers, NATS)."""
    port = free_port()
    second = gateway.stack.start_service("edge-teams", "omniroute_edge", env={"OMNIROUTE_PORT": str(port)})
    _wait_ready(f"http://127.0.0.1:{port}/readyz", "edge-teams", 60, second.process)
    try:
        yield [gateway.url, f"http://127.0.0.1:{port}"]
    finally:
        second.process.terminate()
        second.process.wait(15)


@pytest.fixture(scope="module")
def admin(gateway: Gateway) -> Iterator[httpx.Client]:
    client = gateway.admin_client()
    yield client
    client.close()


def outcome(edge: str, key: str) -> tuple[int, str]:
    """(status, error message or the answer's text) of one chat request through `edge`."""
    client = openai.OpenAI(base_url=f"{edge}/v1", api_key=key, max_retries=0, timeout=10)
    try:
        answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    except openai.APIStatusError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        return exc.status_code, str(body.get("message", ""))
    return 200, answer.choices[0].message.content or ""


def seconds_until_all_hold(edges: list[str], holds: Callable[[str], bool], limit: float = 5.0) -> float:
    """Poll every edge until `holds(edge)`; the seconds until the last one did (fails past `limit`)."""
    started = time.monotonic()
    pending = list(edges)
    while pending:
        pending = [edge for edge in pending if not holds(edge)]
        if pending:
            assert time.monotonic() - started < limit, f"never held on {pending}"
            time.sleep(0.02)
    return time.monotonic() - started


def status_is(key: str, status: int, message: str | None = None) -> Callable[[str], bool]:
    def check(edge: str) -> bool:
        got, text = outcome(edge, key)
        return got == status and (message is None or text == message)
    return check


def new_key(admin: httpx.Client, edges: list[str], name: str) -> tuple[str, str]:
    created = admin.post("/api/keys", json={"name": name})
    assert created.status_code == 201, created.text
    key, key_id = created.json()["key"], created.json()["id"]
    seconds_until_all_hold(edges, status_is(key, 200), limit=10)
    return key, key_id


def test_updates_and_expiry_hold_on_every_edge_within_a_second(admin: httpx.Client, edges: list[str]) -> None:
    key, key_id = new_key(admin, edges, "lifecycle-update")
    timings: dict[str, float] = {}

    def change(what: str, body: dict[str, object], holds: Callable[[str], bool]) -> None:
        answer = admin.patch(f"/api/keys/{key_id}", json=body)
        assert answer.status_code == 200, answer.text
        timings[what] = seconds_until_all_hold(edges, holds)

    change("models narrowed", {"allowed_models": ["myopenai/mock-tool"]}, status_is(key, 403))
    change("models widened", {"allowed_models": None}, status_is(key, 200))
    change("disabled", {"enabled": False}, status_is(key, 401, "API key disabled"))
    change("enabled", {"enabled": True}, status_is(key, 200))
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    change("expired", {"expires_at": past}, status_is(key, 401, "API key expired"))
    change("expiry cleared", {"expires_at": None}, status_is(key, 200))
    assert all(seconds < WITHIN_S for seconds in timings.values()), timings

    # An expiry that arrives on its own: refused from that moment, no change announced.
    soon = datetime.now(UTC) + timedelta(seconds=2)
    assert admin.patch(f"/api/keys/{key_id}", json={"expires_at": soon.isoformat()}).status_code == 200
    seconds_until_all_hold(edges, status_is(key, 200))
    while datetime.now(UTC) < soon:
        time.sleep(0.05)
    assert seconds_until_all_hold(edges, status_is(key, 401, "API key expired")) < 0.5


def test_rotation_with_grace_then_revocation_on_every_edge(admin: httpx.Client, edges: list[str]) -> None:
    old, key_id = new_key(admin, edges, "lifecycle-rotate")
    rotated = admin.post(f"/api/keys/{key_id}/rotate", json={"grace_seconds": 2})
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["key"]
    grace_until = datetime.fromisoformat(rotated.json()["previous_valid_until"])
    assert seconds_until_all_hold(edges, status_is(new, 200)) < WITHIN_S
    assert all(outcome(edge, old)[0] == 200 for edge in edges)   # still in its grace period
    while datetime.now(UTC) < grace_until:
        time.sleep(0.05)
    # After the grace period, refused like an unknown key: the snapshot's grace_until, no reload.
    assert seconds_until_all_hold(edges, status_is(old, 401, "Incorrect API key provided.")) < 0.5
    assert all(outcome(edge, new)[0] == 200 for edge in edges)

    # Rotation without grace: the previous secret is refused at once, everywhere.
    again = admin.post(f"/api/keys/{key_id}/rotate", json={"grace_seconds": 0}).json()["key"]
    assert seconds_until_all_hold(edges, lambda e: status_is(new, 401)(e) and status_is(again, 200)(e)) < WITHIN_S

    revoked = admin.post(f"/api/keys/{key_id}/revoke")
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert seconds_until_all_hold(edges, status_is(again, 401, "API key revoked")) < WITHIN_S
    # In the caller's format: Anthropic's error shape for an Anthropic client.
    for edge in edges:
        client = anthropic.Anthropic(base_url=edge, api_key=again, max_retries=0, timeout=10)
        with pytest.raises(anthropic.AuthenticationError) as refused:
            client.messages.create(model="myanthropic/mock-text", max_tokens=16,
                                   messages=[{"role": "user", "content": "hi"}])
        assert refused.value.body == {"type": "error", "error": {"type": "authentication_error",
                                                                  "message": "API key revoked"}}

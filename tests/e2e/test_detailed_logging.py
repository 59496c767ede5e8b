"""Detailed request logging through the running stack: the general setting turns it on, routers
attach the request and answer (redacted) to usage events, accounting stores them and
/api/usage/request-logs shows them; turned off, a new request carries none."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.support import Gateway, wait_for

pytestmark = pytest.mark.xdist_group("gateway")

SECRET = "sk-live-THISISSECRET0123456789"
REPLY = "Hello from mock openai! This is a scripted reply."


@pytest.fixture
def admin(gateway: Gateway) -> Iterator[httpx.Client]:
    session = gateway.admin_client()
    yield session
    # The stack is shared by the worker's other tests: leave detailed logging off.
    session.put("/api/settings", json={"detailed_logging": False})
    session.close()


def _ask(gateway: Gateway, content: str, *, stream: bool = False) -> str:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.api_key, max_retries=0)
    messages: Any = [{"role": "user", "content": content}]
    if stream:
        with client.chat.completions.with_streaming_response.create(
                model="myopenai/gpt-4o-mini", messages=messages, stream=True) as raw:
            request_id = raw.headers["x-request-id"]
            text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    else:
        answer = client.chat.completions.with_raw_response.create(model="myopenai/gpt-4o-mini",
                                                                  messages=messages)
        request_id = answer.headers["x-request-id"]
        text = answer.parse().choices[0].message.content or ""
    assert text == REPLY
    return request_id


def _logged(gateway: Gateway, admin: httpx.Client, request_id: str) -> dict[str, Any]:
    gateway.usage_row(request_id)  # accounting wrote the row (payloads go in the same transaction)
    listed = admin.get("/api/usage/request-logs", params={"requestId": request_id})
    assert listed.status_code == 200, listed.text
    body: dict[str, Any] = listed.json()
    assert len(body["requests"]) == 1
    return body


def _captured_request(gateway: Gateway, admin: httpx.Client, *, stream: bool = False) -> tuple[str, dict[str, Any]]:
    """Send requests until one is logged with payloads (routers reload the setting within ~1 s)."""
    found: dict[str, Any] = {}

    def captured() -> bool:
        request_id = _ask(gateway, f"my key is {SECRET} — {uuid.uuid4().hex}", stream=stream)
        found.update(id=request_id, body=_logged(gateway, admin, request_id))
        return found["body"]["requests"][0]["requestPayload"] is not None

    wait_for(captured, timeout=15, interval=0.2)
    return found["id"], found["body"]


def test_detailed_logging_on_logs_redacted_payloads_and_off_logs_none(
        gateway: Gateway, admin: httpx.Client) -> None:
    assert admin.get("/api/settings").json()["detailed_logging"] is False  # the default
    turned = admin.put("/api/settings", json={"detailed_logging": True})
    assert turned.status_code == 200 and turned.json()["detailed_logging"] is True

    request_id, body = _captured_request(gateway, admin)
    assert body["detailedLogging"] is True
    entry = body["requests"][0]
    assert "THISISSECRET" not in entry["requestPayload"] + entry["responsePayload"]
    assert "my key is sk-[REDACTED]" in entry["requestPayload"]
    assert '"model":"myopenai/gpt-4o-mini"' in entry["requestPayload"].replace(" ", "")
    assert REPLY in entry["responsePayload"]
    stored = gateway.rows("SELECT request_payload FROM request_payloads WHERE request_id = %s", (request_id,))
    assert stored and "THISISSECRET" not in stored[0][0] and "sk-[REDACTED]" in stored[0][0]

    one = admin.get(f"/api/usage/request-logs/{request_id}")
    assert one.status_code == 200
    assert one.json()["requestPayload"] == entry["requestPayload"] and one.json()["detailedLogging"] is True
    assert admin.get("/api/usage/request-logs/no-such-request").status_code == 404

    # A streamed answer is logged assembled, not as chunks.
    streamed_id, streamed = _captured_request(gateway, admin, stream=True)
    logged = streamed["requests"][0]
    assert logged["stream"] is True and REPLY in logged["responsePayload"]
    assert "data:" not in logged["responsePayload"] and "THISISSECRET" not in logged["requestPayload"]

    turned = admin.put("/api/settings", json={"detailed_logging": False})
    assert turned.status_code == 200 and turned.json()["detailed_logging"] is False
    seen: dict[str, Any] = {}

    def not_captured() -> bool:
        request_id = _ask(gateway, f"no logging now {SECRET} {uuid.uuid4().hex}")
        seen.update(id=request_id, body=_logged(gateway, admin, request_id))
        return seen["body"]["requests"][0]["requestPayload"] is None

    wait_for(not_captured, timeout=15, interval=0.2)
    assert seen["body"]["detailedLogging"] is False
    assert seen["body"]["requests"][0]["responsePayload"] is None
    assert not gateway.rows("SELECT 1 FROM request_payloads WHERE request_id = %s", (seen["id"],))
    # Earlier payloads stay readable.
    assert admin.get(f"/api/usage/request-logs/{streamed_id}").json()["responsePayload"]

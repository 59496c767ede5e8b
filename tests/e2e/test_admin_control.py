"""Restart / shutdown on a real stack of its own: a restart order makes the named service exit
with 75 and the devstack supervisor start it again; a shutdown lets a slow stream already in
flight finish completely, then every service (executors aside) exits with 0."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from omniroute import control
from tests.mocks.server import MockServer
from tests.support import Gateway, running_gateway, wait_for

pytestmark = pytest.mark.xdist_group("admin-control")
KEY = "sk-omni-control-0123456789abcdef"


@pytest.fixture(scope="module")
def stack(mock_upstream: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = {"providers": [{"id": "up", "type": "openai", "base_url": f"{mock_upstream.url}/v1",
                             "models": ["mock-slow-1500", "mock-text"],
                             "connections": [{"name": "main", "api_key": "sk-upstream"}]}],
              "keys": [{"name": "control", "key": KEY}]}
    with running_gateway(Path(tmp_path_factory.mktemp("control")), config, api_key=KEY) as running:
        yield running


def _admin(gateway: Gateway) -> httpx.Client:
    login = httpx.post(f"{gateway.url}/api/auth/login", json={"password": gateway.admin_password})
    assert login.status_code == 200
    # A bearer session: scripts need no CSRF token.
    return httpx.Client(base_url=gateway.url, timeout=30,
                        headers={"authorization": f"Bearer {login.json()['token']}"})


def _exit_code(gateway: Gateway, name: str, timeout: float = 20) -> int:
    process = gateway.stack.service(name).process
    return int(wait_for(lambda: process.poll() is not None, timeout) and process.returncode)


def test_restart_one_service_then_shutdown_drains_the_stream_in_flight(stack: Gateway) -> None:
    with _admin(stack) as admin:
        answer = admin.post("/api/restart", json={"services": ["analytics"], "reason": "test"})
        assert answer.status_code == 202, answer.text
    assert _exit_code(stack, "analytics") == control.RESTART_EXIT_CODE
    assert stack.stack.check_alive() == ["analytics"]
    assert stack.stack.restart_requested() == ["analytics"]     # what `make run` does
    ready = f"http://127.0.0.1:{stack.stack.ports.analytics}/readyz"
    wait_for(lambda: _ok(ready), 20)
    assert stack.stack.check_alive() == []

    streamed: list[str] = []

    def slow_stream() -> None:
        body = {"model": "up/mock-slow-1500", "stream": True,
                "messages": [{"role": "user", "content": "drain me"}]}
        with httpx.stream("POST", f"{stack.url}/v1/chat/completions", json=body, timeout=30,
                          headers={"authorization": f"Bearer {KEY}"}) as response:
            streamed.append(str(response.status_code))
            streamed.extend(response.iter_lines())

    client = threading.Thread(target=slow_stream)
    client.start()
    time.sleep(0.5)     # the request is in flight, waiting for its first byte
    with _admin(stack) as admin:
        answer = admin.post("/api/shutdown", json={"reason": "end of test"})
        assert answer.status_code == 202, answer.text
    client.join(30)
    lines = [line for line in streamed if line]
    assert lines[0] == "200" and lines[-1] == "data: [DONE]", streamed   # finished, not cut
    assert any("Hello" in line for line in lines)
    for name in ("edge", "router", "accounting", "analytics", "admin"):
        assert _exit_code(stack, name) == 0, name
    assert "executor" not in stack.stack.check_alive()   # not ordered: stateless, no NATS


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False

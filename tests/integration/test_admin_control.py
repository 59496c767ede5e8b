"""POST /api/restart and /api/shutdown in-process: session + CSRF required, validated, audited,
and the order reaches NATS and this process's own listener (whose SIGTERM is replaced here)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import nats
import orjson
import pytest
from nats.aio.msg import Msg

from omniroute import control
from tests.integration.admin_app import Admin, running_admin


@pytest.fixture
def signals(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Record control's self-SIGTERM instead of sending it to pytest."""
    seen: list[int] = []
    monkeypatch.setattr(control, "signal_self", lambda: seen.append(control.exit_code()))
    yield seen
    monkeypatch.setattr(control, "_requested_exit", None)


@pytest.fixture(scope="module")
async def admin(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Admin]:
    async with running_admin(tmp_path_factory.mktemp("control")) as running:
        yield running


async def _wait(seen: list[int], count: int) -> None:
    for _ in range(100):
        if len(seen) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} self-signals, saw {seen}")


async def test_orders_need_a_session_and_csrf(admin: Admin, signals: list[int]) -> None:
    async with admin.anonymous() as client:
        assert (await client.post("/api/restart")).status_code == 401
        logged = await admin.logged_in()
        del logged.headers["x-csrf-token"]
        assert (await logged.post("/api/shutdown")).status_code == 403
        await logged.aclose()
    assert (await admin.client.post("/api/restart", json={"services": ["nope"]})).status_code == 400
    answer = await admin.client.post("/api/restart", json={"services": ["executor"]})
    assert answer.status_code == 400 and "Deployment" in answer.json()["error"]["message"]
    await asyncio.sleep(0.1)
    assert signals == []


async def test_restart_announces_and_this_admin_obeys(admin: Admin, signals: list[int]) -> None:
    listener = await nats.connect(admin.settings.nats_url)
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def got(msg: Msg) -> None:
        await received.put(msg.data)

    await listener.subscribe(control.subject(admin.settings), cb=got)
    await listener.flush()
    try:
        answer = await admin.client.post("/api/restart", json={"reason": "new env"})
        assert answer.status_code == 202, answer.text
        assert answer.json()["exitCode"] == control.RESTART_EXIT_CODE
        message = orjson.loads(await asyncio.wait_for(received.get(), 5))
        assert message == {"action": "restart", "services": ["*"], "reason": "new env"}
        await _wait(signals, 1)
        assert signals == [control.RESTART_EXIT_CODE]

        # An order for other services only: announced, but this admin keeps running.
        answer = await admin.client.post("/api/shutdown", json={"services": ["edge", "router"]})
        assert answer.status_code == 202 and answer.json()["exitCode"] == 0
        message = orjson.loads(await asyncio.wait_for(received.get(), 5))
        assert message["action"] == "shutdown" and message["services"] == ["edge", "router"]
        await asyncio.sleep(0.2)
        assert signals == [control.RESTART_EXIT_CODE]

        answer = await admin.client.post("/api/shutdown", json={"services": ["admin"]})
        await _wait(signals, 2)
        assert signals[-1] == 0
    finally:
        await listener.close()
    log = (await admin.client.get("/api/compliance/audit-log", params={"action": "system.*"})).json()
    assert [e["action"] for e in log["entries"]] == ["system.shutdown", "system.shutdown", "system.restart"]
    assert log["entries"][-1]["detail"] == {"services": ["*"], "reason": "new env"}

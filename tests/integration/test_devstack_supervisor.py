"""`make run`'s supervisor (omniroute.devstack.stack.Supervisor): a service that dies is started
again in place with a crash-loop delay (1 s, 2 s, 4 s … 30 s, back to 1 s after a healthy
stretch), a restart order (exit 75) at once, a shutdown (exit 0) stops the stack; on a real
stack, a router killed with SIGKILL comes back on its port and serves again. Also: a test stack's
teardown leaves no Redis key under its environment name."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from omniroute.control import RESTART_EXIT_CODE
from omniroute.devstack.backing import listening
from omniroute.devstack.stack import Ports, Stack, Supervisor
from tests.redis_keys import env_keys
from tests.support import REDIS_URL, running_gateway, wait_for

CHILD = "tests.integration.devstack_child"


class Clock:
    """The supervisor's clock, moved by the test: delays are checked without waiting them out."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(ports=Ports.free(), env={}, log_dir=tmp_path / "logs")
    try:
        yield stack
    finally:
        stack.stop(timeout=5)


def _kill(stack: Stack, name: str) -> int:
    process = stack.service(name).process
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    return process.pid


def _delay(line: str) -> float:
    found = re.search(r"starting it again in ([\d.]+) s", line)
    assert found, line
    return float(found.group(1))


def test_crash_loop_delay_doubles_up_to_30_s_and_resets_after_a_healthy_stretch(stack: Stack) -> None:
    clock, lines = Clock(), list[str]()
    supervisor = Supervisor(stack, say=lines.append, clock=clock, healthy_after_s=60)
    stack.start_service("worker", CHILD, "sleep")
    supervisor.poll()
    delays = []
    for crash in range(1, 8):
        killed = _kill(stack, "worker")
        assert supervisor.poll() == []
        assert lines[-1].startswith("worker was killed by SIGKILL (kill -9, or out of memory); starting it again in ")
        assert lines[-1].endswith(f"(crash {crash} in a row)")
        delays.append(_delay(lines[-1]))
        clock.now += delays[-1] - 0.1
        supervisor.poll()
        assert stack.service("worker").process.pid == killed      # still waiting out its delay
        clock.now += 0.1
        supervisor.poll()
        restarted = stack.service("worker").process
        assert restarted.pid != killed and restarted.poll() is None
        assert stack.service("worker").launch == (CHILD, ("sleep",), {})   # same module and arguments
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    assert len(lines) == 7                                          # one line per crash

    clock.now += 60                                                 # up for a minute: healthy
    supervisor.poll()
    _kill(stack, "worker")
    supervisor.poll()
    assert _delay(lines[-1]) == 1 and lines[-1].endswith("(crash 1 in a row)")


def test_exit_codes_crash_restart_order_and_shutdown(stack: Stack) -> None:
    clock, lines = Clock(), list[str]()
    supervisor = Supervisor(stack, say=lines.append, clock=clock)
    for name, code in (("crasher", 3), ("ordered", RESTART_EXIT_CODE), ("finished", 0)):
        stack.start_service(name, CHILD, "exit", str(code)).process.wait(30)
    ordered_pid = stack.service("ordered").process.pid

    assert supervisor.poll() == ["finished"]       # exit 0: a shutdown, nobody starts it again
    assert "restarting on the admin's order: ordered" in lines
    assert stack.service("ordered").process.pid != ordered_pid     # at once, no delay
    assert "crasher exited with code 3; starting it again in 1 s (crash 1 in a row)" in lines
    assert [s.name for s in stack.processes] == ["crasher", "ordered", "finished"]   # start order kept


def test_run_returns_when_asked_and_when_a_service_finished(stack: Stack) -> None:
    stack.start_service("worker", CHILD, "sleep")
    asked = iter([False, False, True])
    assert Supervisor(stack, say=print).run(until=lambda: next(asked), interval_s=0.01) == []
    assert stack.service("worker").process.poll() is None          # run() itself stops nothing
    stack.start_service("finished", CHILD, "exit", "0").process.wait(30)
    assert Supervisor(stack, say=print).run(until=lambda: False, interval_s=0.01) == ["finished"]


def test_a_router_killed_with_sigkill_comes_back_and_serves(tmp_path: Path) -> None:
    key = "sk-omni-supervisor-0123456789ab"
    lines: list[str] = []
    with running_gateway(tmp_path, {"keys": [{"name": "supervised", "key": key}]}, api_key=key) as gateway:
        stack, env = gateway.stack, gateway.settings.env
        login = httpx.post(f"{gateway.url}/api/auth/login", json={"password": gateway.admin_password})
        assert login.status_code == 200
        assert env_keys(REDIS_URL, env), "the stack wrote no Redis key: nothing for the teardown to prove"

        def chat() -> httpx.Response:
            return httpx.post(f"{gateway.url}/v1/chat/completions", timeout=30,
                              headers={"authorization": f"Bearer {key}"},
                              json={"model": "nowhere/none", "messages": [{"role": "user", "content": "hi"}]})
        routed = chat()   # the router's own answer: the model is unknown

        supervisor = Supervisor(stack, say=lines.append)
        killed = _kill(stack, "router")
        supervisor.run(until=lambda: bool(lines) and stack.service("router").process.pid != killed
                       and listening("127.0.0.1", stack.ports.router), interval_s=0.1)
        assert lines == ["router was killed by SIGKILL (kill -9, or out of memory); "
                         "starting it again in 1 s (crash 1 in a row)"]
        again = wait_for(lambda: (answer := chat()).status_code == routed.status_code and answer, timeout=30)
        assert again.json() == routed.json()
        assert stack.check_alive() == []
    assert env_keys(REDIS_URL, env) == []      # the teardown removed every key under its env

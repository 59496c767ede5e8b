"""A stack started by a process whose gRPC is busy (a test session, a benchmark driver) starts
every service: none dies before its exec with grpc's "epoll_wait error: Bad file descriptor".

It used to, in a few starts per hundred: a `preexec_fn` made `subprocess` fork the parent, gRPC's
fork handlers started its poller again in the child, and `close_fds` closed the poller's epoll
descriptor under it (omniroute.devstack.child says more)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from omniroute.devstack import child
from omniroute.devstack.stack import Ports, Stack
from tests.support import unique_name

STARTS = 150


@pytest.fixture
def busy_grpc() -> Iterator[None]:
    """A gRPC channel calling a port where nothing listens, over and over: its poller thread is
    always at work, as a test session's is."""
    stop = threading.Event()

    async def call_forever() -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{Ports.free().router}") as channel:
            method = channel.unary_unary("/nothing.Here/Call")
            while not stop.is_set():
                try:
                    await method(b"", timeout=0.05)
                except grpc.aio.AioRpcError:
                    pass

    thread = threading.Thread(target=lambda: asyncio.run(call_forever()), daemon=True)
    thread.start()
    time.sleep(0.3)
    yield
    stop.set()
    thread.join(10)


def test_no_start_dies_while_the_parents_grpc_is_busy(busy_grpc: None, tmp_path: Path) -> None:
    stack = Stack(ports=Ports.free(), env={"OMNIROUTE_ENV": unique_name("start")}, log_dir=tmp_path)
    codes = []
    for index in range(STARTS):
        service = stack.start_service(f"s{index}", "platform")   # prints a line, exits 0
        codes.append(service.process.wait(60))
        assert service.log_file is not None
        service.log_file.close()
    stack.processes.clear()
    aborted = [path.name for path in tmp_path.glob("*.log") if "epoll_wait" in path.read_text(errors="replace")]
    assert aborted == []
    assert codes == [0] * STARTS


def test_a_child_runs_its_module_with_the_parents_settings(tmp_path: Path) -> None:
    """argv reaches the module; the CPU set and the death signal are applied after the exec."""
    out = tmp_path / "out.txt"
    script = tmp_path / "probe.py"
    script.write_text(
        "import ctypes, os, signal, sys\n"
        "libc = ctypes.CDLL('libc.so.6', use_errno=True)\n"
        "sig = ctypes.c_int()\n"
        "libc.prctl(2, ctypes.byref(sig))\n"   # PR_GET_PDEATHSIG
        "open(sys.argv[1] + '.out', 'w').write(f'{sorted(os.sched_getaffinity(0))} {sig.value} {sys.argv[1:]}')\n")
    cpu = min(os.sched_getaffinity(0))
    command = child.command("probe", str(out), "x", cpus={cpu})
    subprocess.run(command, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)}, check=True, timeout=60)
    assert Path(f"{out}.out").read_text() == f"[{cpu}] {int(signal.SIGTERM)} ['{out}', 'x']"


def test_a_child_program_runs_with_the_parents_settings(tmp_path: Path) -> None:
    """A program (not a module; LiteLLM's proxy in the benchmark) gets the same settings, which
    survive its exec."""
    out = tmp_path / "out.txt"
    cpu = min(os.sched_getaffinity(0))
    command = child.program_command("/bin/sh", "-c", f"grep -E 'Cpus_allowed_list' /proc/$$/status > {out}",
                                    cpus={cpu})
    subprocess.run(command, check=True, timeout=60)
    assert out.read_text().split() == ["Cpus_allowed_list:", str(cpu)]

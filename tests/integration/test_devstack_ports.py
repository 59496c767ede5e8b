"""free_port across processes: parallel test stacks (xdist workers) asking for ports at the same
moment never get the same one, as long as each is still held by the process that picked it."""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import time
from pathlib import Path

from omniroute.devstack.stack import PORT_LOCK_DIR, free_port

PROCESSES = 4
PORTS_EACH = 300

# Waits for a common start time, picks its ports, prints them, then holds them until its stdin
# closes (a port is reserved for as long as its picker lives).
PICKER = f"""
import json, sys, time
from omniroute.devstack.stack import PORT_LOCK_DIR, free_port
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
print(json.dumps([free_port() for _ in range({PORTS_EACH})]), flush=True)
sys.stdin.read()
"""


def _left_behind(path: Path) -> bool:
    """A lock file that exists but that nobody holds."""
    try:
        with open(path, "rb") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False   # held: a live process's reservation
            fcntl.flock(lock, fcntl.LOCK_UN)
            return True
    except FileNotFoundError:
        return False


def test_parallel_pickers_never_share_a_port() -> None:
    start_at = time.time() + 3   # every picker imported and waiting, then all pick at once
    pickers = [subprocess.Popen([sys.executable, "-c", PICKER, str(start_at)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for _ in range(PROCESSES)]
    mine = {free_port() for _ in range(PORTS_EACH)}   # this process picks at the same time too
    try:
        picked = [json.loads(picker.stdout.readline()) for picker in pickers if picker.stdout]
    finally:
        for picker in pickers:
            picker.communicate(timeout=30)
    every = [port for ports in picked for port in ports] + sorted(mine)
    assert len(picked) == PROCESSES and len(mine) == PORTS_EACH
    assert len(every) == len(set(every)), "some port was handed to two pickers"
    # A picker that exited left no reservation behind: a lock file of one of its ports is there
    # again only if another live process (a parallel test worker) picked that port since, and
    # then that process holds its lock. This process's stay while it lives.
    theirs = [port for ports in picked for port in ports]
    assert [port for port in theirs if _left_behind(PORT_LOCK_DIR / f"{port}.lock")] == []
    assert all((PORT_LOCK_DIR / f"{port}.lock").exists() for port in mine)


"""A stand-in service for tests/integration/test_devstack_supervisor.py, started by a real Stack:
`python -m tests.integration.devstack_child exit 3` exits with 3 at once; `... sleep` runs until
it is killed."""

from __future__ import annotations

import sys
import time

if __name__ == "__main__":
    if sys.argv[1] == "exit":
        raise SystemExit(int(sys.argv[2]))
    while True:
        time.sleep(60)

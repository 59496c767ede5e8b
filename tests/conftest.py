"""Settings every test process shares."""

from __future__ import annotations

import contextlib
import os

import pytest
import redis

# Tests build provider specs in-process against mock upstreams on 127.0.0.1, which the SSRF
# guard (omniroute.ssrf) refuses unless private upstreams are allowed. Tests of the guard itself
# pass allow_private explicitly or run a stack without this variable.
os.environ.setdefault("OMNIROUTE_ALLOW_PRIVATE_UPSTREAMS", "true")

# Every test fails when a stack it ran against logged an unexpected exception (tests/log_scan.py).
from tests.log_scan import service_logs_clean  # noqa: F401


def pytest_sessionstart(session: pytest.Session) -> None:
    """Once per run (not per xdist worker): remove the Redis keys of test envs whose process died
    before its teardown (tests/redis_keys.py). No Redis here (unit tests alone): nothing to do."""
    if hasattr(session.config, "workerinput"):
        return
    from tests.redis_keys import remove_abandoned_envs
    from tests.support import REDIS_URL

    with contextlib.suppress(redis.exceptions.ConnectionError):
        remove_abandoned_envs(REDIS_URL)

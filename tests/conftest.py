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


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Make `--dist loadgroup` group again. pytest 9.2 derives an item's nodeid from its
    structured id (`_id`); pytest-xdist 3.8 still appends the group to the old `_nodeid` field
    (pytest-dev/pytest-xdist#1386, fix in #1388), so no test got its `@group` and xdist_group
    was ignored: e.g. the process-fault phases ran on two workers, each with a cluster of its
    own. Copy xdist's grouped id into the structured one; remove once xdist has the fix."""
    from _pytest.nodeid import NodeId

    for item in items:
        grouped = getattr(item, "_nodeid", None)   # set only by xdist's loadgroup, in a worker
        if isinstance(grouped, str) and grouped != item.nodeid:
            item._id = NodeId.parse(grouped)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Once per run (not per xdist worker): remove the Redis keys of test envs whose process died
    before its teardown (tests/redis_keys.py). No Redis here (unit tests alone): nothing to do."""
    if hasattr(session.config, "workerinput"):
        return
    from tests.redis_keys import remove_abandoned_envs
    from tests.support import REDIS_URL

    with contextlib.suppress(redis.exceptions.ConnectionError):
        remove_abandoned_envs(REDIS_URL)

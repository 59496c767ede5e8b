"""Settings every test process shares."""

from __future__ import annotations

import os

# Tests build provider specs in-process against mock upstreams on 127.0.0.1, which the SSRF
# guard (omniroute.ssrf) refuses unless private upstreams are allowed. Tests of the guard itself
# pass allow_private explicitly or run a stack without this variable.
os.environ.setdefault("OMNIROUTE_ALLOW_PRIVATE_UPSTREAMS", "true")

# Every test fails when a stack it ran against logged an unexpected exception (tests/log_scan.py).
from tests.log_scan import service_logs_clean  # noqa: F401

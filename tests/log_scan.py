"""Failures nobody asserted on: the service logs of every stack a test starts are scanned for
tracebacks and uncaught-exception records, and a test run with one fails.

A stack registers its log folder (`watched`); the autouse fixture `service_logs_clean` (imported
by tests/conftest.py) scans the bytes written while each test ran and fails that test — so a
failure points at the test that caused it. What was written outside any test (while a stack
started or stopped, between tests) is scanned by the stack's own fixture (`assert_clean`).

A record is found when it holds one of `MARKERS`. `ALLOWED` is the short, explicit list of the
ones that are expected; each entry says why and where (which stacks, which tests) it may occur."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

#: What a record that reports an unexpected exception holds (Python, asyncio, uvicorn, grpc).
MARKERS = (
    "Traceback (most recent call last)",     # any traceback: logger.exception, an uncaught one
    "Exception in ASGI application",         # uvicorn: a route raised
    "Task exception was never retrieved",    # asyncio: a task failed and nobody awaited it
    "Exception ignored in",                  # sys.unraisablehook: an error in __del__ or a callback
    "raised by servicer method",             # grpc.aio: a servicer raised
    "Exception calling application",         # grpc (sync server): a servicer raised
    "Fatal Python error",                    # faulthandler: a crash
)

#: Where one log record starts: `%(asctime)s <service> LEVEL ...` (omniroute.runtime) or
#: uvicorn's `LEVEL:     ...`. The lines in between (a traceback) belong to the record above.
_RECORD_START = re.compile(rb"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}|(DEBUG|INFO|WARNING|ERROR|CRITICAL):)")
_MAX_EXCERPT_LINES = 80


@dataclass(frozen=True)
class Allowed:
    """A finding that is expected: `pattern` is searched in the record's text."""

    pattern: str
    why: str
    #: Labels of the stacks (`watched(label=...)`) where it may occur; empty: any stack.
    stacks: frozenset[str] = frozenset()
    #: Regular expression on the test's node id; empty: any test (and outside tests).
    tests: str = ""

    def allows(self, text: str, stack: str, test: str | None) -> bool:
        if self.stacks and stack not in self.stacks:
            return False
        if self.tests and (test is None or not re.search(self.tests, test)):
            return False
        return re.search(self.pattern, text) is not None


#: Every expected finding, with why. Keep it short: a real bug is fixed, not listed here.
ALLOWED: tuple[Allowed, ...] = (
    # nats-py logs each failed reconnect attempt with its traceback ("nats: encountered error",
    # ConnectionRefusedError) while NATS is down; only the process-fault tests stop NATS, on the
    # reliability cluster's own server, and every service reconnects once it is back.
    Allowed(r"nats\.aio\.client: nats: encountered error", "NATS stopped on purpose by the test",
            stacks=frozenset({"cluster"}),
            tests=r"test_restart_backing_server_under_load\[nats\]|test_a_router_stopped_while_nats_is_away"),
)


@dataclass(frozen=True)
class Finding:
    service: str       # the log file's name without .log (one file per service process)
    file: Path
    line: int          # 1-based line of the record in the file
    text: str

    def __str__(self) -> str:
        return f"--- {self.service} ({self.file}, line {self.line}):\n{self.text}"


class ServiceLogError(AssertionError):
    """A service logged an unexpected exception."""


@dataclass
class WatchedLogs:
    """The log folder of one running stack and how much of each file was scanned already."""

    label: str
    log_dir: Path
    scanned: dict[Path, tuple[int, int]] = field(default_factory=dict)   # file → (bytes, lines)

    def new_findings(self, test: str | None) -> list[Finding]:
        """The unexpected records written since the last scan; the scan moves on past them."""
        findings: list[Finding] = []
        for path in sorted(self.log_dir.glob("*.log")):
            offset, lines_before = self.scanned.get(path, (0, 0))
            with path.open("rb") as log:
                log.seek(offset)
                data = log.read()
            # Only whole lines: a record being written now is read whole next time.
            end = data.rfind(b"\n") + 1
            data = data[:end]
            self.scanned[path] = (offset + end, lines_before + data.count(b"\n"))
            for line, text in _records_with_markers(data):
                if not any(rule.allows(text, self.label, test) for rule in ALLOWED):
                    findings.append(Finding(path.stem, path, lines_before + line, text))
        return findings

    def assert_clean(self, when: str, test: str | None = None) -> None:
        findings = self.new_findings(test)
        if findings:
            raise ServiceLogError(
                f"{len(findings)} unexpected exception(s) in the service logs of the {self.label} "
                f"stack ({when}); fix the cause, or, if it is expected, add a commented entry to "
                f"tests/log_scan.py ALLOWED:\n" + "\n".join(str(finding) for finding in findings))


def _records_with_markers(data: bytes) -> Iterator[tuple[int, str]]:
    """(first line number, text) of each record in `data` that holds a marker."""
    lines = data.splitlines()
    start = 0
    for index in range(1, len(lines) + 1):
        if index < len(lines) and not _RECORD_START.match(lines[index]):
            continue
        record = b"\n".join(lines[start:index]).decode("utf-8", errors="replace")
        if any(marker in record for marker in MARKERS):
            excerpt = record.splitlines()
            if len(excerpt) > _MAX_EXCERPT_LINES:   # the start says where, the end says what
                excerpt = [*excerpt[:20], "…", *excerpt[-(_MAX_EXCERPT_LINES - 21):]]
            yield start + 1, "\n".join(excerpt)
        start = index


_watched: list[WatchedLogs] = []


@contextlib.contextmanager
def watched(log_dir: Path, label: str) -> Iterator[WatchedLogs]:
    """Scan `log_dir` after every test while the block runs (its stack is up)."""
    logs = WatchedLogs(label, log_dir)
    _watched.append(logs)
    try:
        yield logs
    finally:
        _watched.remove(logs)


@pytest.fixture(autouse=True)
def service_logs_clean(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails a test during which a running stack's service logged an unexpected exception.
    What was logged before the test (by the previous test, late, or while this test's fixtures
    started a stack) fails this test's set-up instead, so nothing goes unseen."""
    test = request.node.nodeid
    for logs in list(_watched):
        logs.assert_clean(f"before {test}: logged by an earlier test or while fixtures started", test)
    yield
    for logs in list(_watched):
        logs.assert_clean(f"during {test}", test)

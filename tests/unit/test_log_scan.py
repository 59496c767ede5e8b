"""The service-log scanner of the test stacks (tests/log_scan.py): what it finds, what it lets
through, and that every byte is judged once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import log_scan
from tests.log_scan import Allowed, ServiceLogError, WatchedLogs

TRACEBACK = """2026-12-03 10:00:01,000 router ERROR omniroute.router: unexpected error in Chat
Traceback (most recent call last):
  File "/work/services/router/omniroute_router/servicer.py", line 70, in Chat
    raise RuntimeError("boom")
RuntimeError: boom
"""
INFO = "2026-12-03 10:00:00,000 router INFO omniroute: gRPC listening on 127.0.0.1:1\n"


def test_a_traceback_is_found_with_its_service_line_and_whole_text(tmp_path: Path) -> None:
    (tmp_path / "router.log").write_text(INFO + TRACEBACK + INFO)
    (tmp_path / "edge.log").write_text(INFO)
    [finding] = WatchedLogs("gateway", tmp_path).new_findings(None)
    assert (finding.service, finding.line) == ("router", 2)
    assert finding.text == TRACEBACK.rstrip("\n")


@pytest.mark.parametrize("record", [
    "ERROR:    Exception in ASGI application\n",
    "2026-12-03 10:00:00,000 edge ERROR asyncio: Task exception was never retrieved\n",
    "Exception ignored in: <function Client.__del__ at 0x7f>\n",
    "Fatal Python error: Segmentation fault\n",
])
def test_other_uncaught_exception_records_are_found(tmp_path: Path, record: str) -> None:
    (tmp_path / "edge.log").write_text(INFO + record + INFO)
    # A line without a record header stays with the record above it (as a traceback does).
    [finding] = WatchedLogs("gateway", tmp_path).new_findings(None)
    assert finding.text.endswith(record.rstrip("\n"))


def test_each_byte_is_judged_once_and_a_half_written_line_waits(tmp_path: Path) -> None:
    log = tmp_path / "router.log"
    log.write_text(INFO)
    logs = WatchedLogs("gateway", tmp_path)
    assert logs.new_findings(None) == []
    with log.open("a") as out:
        out.write(TRACEBACK[:40])              # no newline yet: not read
    assert logs.new_findings(None) == []
    with log.open("a") as out:
        out.write(TRACEBACK[40:])
    [finding] = logs.new_findings(None)
    assert finding.line == 2 and finding.text.endswith("RuntimeError: boom")
    assert logs.new_findings(None) == []      # already reported


def test_assert_clean_names_the_moment_and_the_excerpt(tmp_path: Path) -> None:
    (tmp_path / "router.log").write_text(TRACEBACK)
    with pytest.raises(ServiceLogError, match=r"(?s)during tests/x.py::t.*router.*RuntimeError: boom"):
        WatchedLogs("gateway", tmp_path).assert_clean("during tests/x.py::t")


def test_the_allow_list_is_scoped_to_its_stacks_and_tests(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_scan, "ALLOWED", (
        Allowed(r"RuntimeError: boom", "a test restarts it", stacks=frozenset({"cluster"}),
                tests=r"test_restart"),))
    for stack, test, found in (("cluster", "tests/r.py::test_restart[nats]", 0),
                               ("cluster", "tests/r.py::test_kill", 1),
                               ("cluster", None, 1),
                               ("gateway", "tests/r.py::test_restart[nats]", 1)):
        (tmp_path / "router.log").write_text(TRACEBACK)
        assert len(WatchedLogs(stack, tmp_path).new_findings(test)) == found, (stack, test)


def test_every_allow_list_entry_says_why() -> None:
    for rule in log_scan.ALLOWED:
        assert rule.why.strip() and rule.pattern.strip(), rule

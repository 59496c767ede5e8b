"""`python -m tests.reliability.report`: run the process-fault phases (tests/reliability/
test_process_faults.py, serially) and write their numbers into tests/reliability/README.md,
between the `report:process-faults` markers. The numbers of a failing run are not written: every
sentence around the table is something that run asserted.

`--from FILE` renders a report an earlier run wrote ($OMNIROUTE_RELIABILITY_REPORT) instead.
`--print` shows the table without touching the README."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
ROOT = HERE.parent.parent
START = "<!-- report:process-faults:start (written by `python -m tests.reliability.report`) -->"
END = "<!-- report:process-faults:end -->"


def run_phases(report_path: Path) -> int:
    env = {**os.environ, "OMNIROUTE_RELIABILITY_REPORT": str(report_path)}
    command = [sys.executable, "-m", "pytest", str(HERE / "test_process_faults.py"),
               "-p", "no:cacheprovider", "-q", "-s"]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


def _how(phase: dict[str, Any]) -> str:
    kinds: dict[str, int] = phase.get("failure_kinds") or {}
    if not kinds:
        return "0"
    parts = [f"{count} {kind}" for kind, count in sorted(kinds.items(), key=lambda item: -item[1])]
    return f"{phase['failed']} ({', '.join(parts)}; {phase['failed_in_flight']} in flight at the fault)"


def render(report: dict[str, Any], when: str) -> str:
    phases = [(name, value) for name, value in report.items() if "failed_after_recovery_window" in value]
    lines = [
        START,
        f"Numbers of the run of {when} (serial, {os.cpu_count()} cores shared with the rest of the "
        "machine). \"In flight\": started before the fault.",
        "",
        "| phase | requests | succeeded | failed (how) | failed, started after fault + recovery | "
        "usage rows missing |",
        "|---|---|---|---|---|---|",
    ]
    for name, phase in phases:
        recovery = f"{phase['failed_after_recovery_window']} (+{phase['recovery_s']:g} s)"
        slowest = phase.get("slowest_refusal_s")
        how = _how(phase) + (f"; slowest refusal {slowest:.3f} s" if slowest is not None else "")
        lines.append(f"| {name} | {phase['requests']} | {phase['succeeded']} | {how} | {recovery} | "
                     f"{phase['usage rows missing']} |")
    rows = report.get("usage rows")
    if rows:
        lines += ["", f"Usage rows of every successful request of the run: {rows['succeeded requests']} "
                      f"successes, {rows['rows']} rows, {rows['missing']} missing, "
                      f"{rows['duplicated']} duplicated, {rows['not 200']} with a status other than 200."]
    window = report.get("router stopped while NATS is away")
    if window:
        lines += ["", f"A router stopped (SIGTERM) while NATS was away, after {window['requests']} requests "
                      f"({window['succeeded']} succeeded): it logged {window['events the router logged as lost']} "
                      f"events as lost; {window['usage rows missing']} successful requests have no usage row."]
    sigterm = report.get("sigterm edge with 50 streams")
    if sigterm:
        lines += ["", f"SIGTERM to an edge with {sigterm['streams']} open streams: {sigterm['completed']} "
                      f"completed; {sigterm['new succeeded']} of {sigterm['new requests during drain']} "
                      "new requests sent meanwhile were served by the other edge."]
    lines.append(END)
    return "\n".join(lines)


def write_readme(table: str, readme: Path = README) -> None:
    text = readme.read_text()
    before, start, rest = text.partition(START)
    _, end, after = rest.partition(END)
    if not start or not end:
        raise SystemExit(f"{readme} lacks the markers {START!r} … {END!r}")
    readme.write_text(before + table + after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source", type=Path, help="a report JSON of an earlier run")
    parser.add_argument("--print", action="store_true", help="print the table, leave the README alone")
    args = parser.parse_args()
    if args.source:
        report_path = args.source
        when = datetime.datetime.fromtimestamp(report_path.stat().st_mtime, datetime.UTC)
    else:
        report_path = Path(tempfile.mkstemp(prefix="omniroute-reliability-", suffix=".json")[1])
        code = run_phases(report_path)
        if code:
            raise SystemExit(f"the process-fault tests failed (exit {code}): README left as it was")
        when = datetime.datetime.now(datetime.UTC)
    table = render(json.loads(report_path.read_text()), when.strftime("%Y-%m-%d %H:%M UTC"))
    if args.print:
        print(table)
    else:
        write_readme(table)
        print(f"wrote {README.relative_to(ROOT)}:\n{table}")


if __name__ == "__main__":
    main()

"""Where the CPU goes: start the mock and OmniRoute (pinned as `make bench` pins them), send a steady
load, and print CPU seconds per 1000 requests for each service; with --py-spy, also record a
py-spy profile of every service (speedscope JSON in bench/results/profiles/, not committed).

    python -m bench.profile [--rate 100] [--duration 15] [--stream] [--py-spy]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.run import bodies, load, with_model
from bench.targets import MODEL, OMNI_KEY, ROOT, Mock, OmniRoute, cpu_seconds


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--anthropic", action="store_true", help="an Anthropic client (translation)")
    parser.add_argument("--py-spy", action="store_true")
    parser.add_argument("--native", action="store_true", help="py-spy also samples C frames")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="omniroute-profile-"))
    body = bodies(work)
    mock = Mock(cpus={0})
    mock.start()
    target = OmniRoute(mock, {1}, work / "omniroute")
    target.start()
    try:
        if args.anthropic:
            url = f"{target.url}/v1/messages"
            headers = [f"x-api-key: {OMNI_KEY}", "anthropic-version: 2023-06-01"]
            chosen = body["anthropic_stream" if args.stream else "anthropic"]
        else:
            url = f"{target.url}/v1/chat/completions"
            headers = [f"authorization: Bearer {OMNI_KEY}"]
            chosen = body["stream" if args.stream else "chat"]
        chosen = with_model(chosen, f"bench/{MODEL}")
        load(url, 50, 3, chosen, headers, {0}, args.stream)  # warm-up
        pids = target.pids()
        spies = []
        if args.py_spy:
            spy = shutil.which("py-spy") or str(Path(__import__("sys").executable).parent / "py-spy")
            for name, group in pids.items():
                out = ROOT / "bench" / "results" / "profiles" / f"{name}.json"
                out.parent.mkdir(parents=True, exist_ok=True)
                spies.append(subprocess.Popen(
                    [spy, "record", "-p", str(group[-1]), "-d", str(int(args.duration)), "-r", "250",
                     "-f", "speedscope", "-o", str(out), "--gil",
                     *(["--native"] if args.native else ["--nonblocking"])],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        before = {name: cpu_seconds(group) for name, group in pids.items()}
        result = load(url, args.rate, args.duration, chosen, headers, {0}, args.stream)
        used = {name: cpu_seconds(group) - before[name] for name, group in pids.items()}
        for spy_process in spies:
            spy_process.wait(60)
        ok = max(result["ok"], 1)
        print(json.dumps({"ok": result["ok"], "errors": result["errors"], "latency_ms": result["latency_ms"],
                          "ttfb_ms": result["ttfb_ms"],
                          "cpu_ms_per_request": {name: round(s / ok * 1000, 3) for name, s in used.items()},
                          "cpu_ms_total": round(sum(used.values()) / ok * 1000, 3)}, indent=1))
    finally:
        target.stop()
        mock.stop()
        time.sleep(0.1)


if __name__ == "__main__":
    main()

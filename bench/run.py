"""`make bench`: the same open-loop load against the mock alone (the floor), OmniRoute and LiteLLM,
in one run on this machine. Writes bench/results/<timestamp>.{json,md}.

CPU budget: the system under test (every OmniRoute process, or LiteLLM and its workers) is pinned
to SUT_CPUS; the load generator and the mock to LOAD_CPUS, so neither steals the other's core.

    python -m bench.run [--quick] [--only omniroute,litellm]
    python -m bench.run --soak     # only the memory soak: 100 000 requests through OmniRoute
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.targets import (
    LITELLM_KEY,
    MODEL,
    OMNI_KEY,
    ROOT,
    LiteLLM,
    Mock,
    OmniRoute,
    cpu_seconds,
    peak_rss_mb,
    rss_mb,
)
from omniroute.devstack import child

RESULTS = ROOT / "bench" / "results"
P99_LIMIT_MS = 50.0
COOL_DOWN_S = 15.0
STREAM_LOW_RATE = 20  # streams per second that one core sustains for every target's TTFB, not just ours
SOAK_RATE, SOAK_REQUESTS = 100, 100_000


def warm_up(url: str, body: Path, headers: list[str], cpus: set[int]) -> None:
    """The same for every target: 10 s of light load (lazy imports, pools, first-time
    start-up work such as applying the config and rebuilding counters), then a quiet pause."""
    load(url, 20, 10, body, headers, cpus)
    time.sleep(COOL_DOWN_S / 3)


def bodies(work: Path) -> dict[str, Path]:
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello in five words."}]}
    files = {
        "chat": {**chat},
        "stream": {**chat, "stream": True},
        "cacheable": {**chat, "temperature": 0},
        "anthropic": {"model": MODEL, "max_tokens": 256,
                      "messages": [{"role": "user", "content": "Say hello in five words."}]},
        "anthropic_stream": {"model": MODEL, "max_tokens": 256, "stream": True,
                             "messages": [{"role": "user", "content": "Say hello in five words."}]},
    }
    paths = {}
    for name, body in files.items():
        paths[name] = work / f"{name}.json"
        paths[name].write_text(json.dumps(body))
    return paths


def load(url: str, rate: float, duration: float, body: Path, headers: list[str], cpus: set[int],
         stream: bool = False) -> dict[str, Any]:
    args = ["--url", url, "--rate", str(rate), "--duration", str(duration), "--body", str(body)]
    for header in headers:
        args += ["--header", header]
    if stream:
        args.append("--stream")
    output = subprocess.run(child.command("bench.loadgen", *args, cpus=cpus), cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    return json.loads(output)


def with_model(body: Path, model: str) -> Path:
    data = json.loads(body.read_text())
    data["model"] = model
    path = body.with_name(f"{body.stem}-{model.replace('/', '_')}.json")
    path.write_text(json.dumps(data))
    return path


def sustained(p: dict[str, Any]) -> bool:
    return not p["errors"] and p["latency_ms"].get("p99", 1e9) < P99_LIMIT_MS


def sweep(url: str, body: Path, headers: list[str], cpus: set[int], rates: list[float],
          duration: float) -> dict[str, Any]:
    """Raise the rate until p99 ≥ 50 ms or an error; the last rate that held is the answer.
    Starts after a quiet pause, so that a backlog left by an earlier overloaded scenario (LiteLLM
    streaming at 100 req/s) is not charged to the sweep."""
    time.sleep(COOL_DOWN_S)
    best, points = 0.0, []
    for rate in rates:
        held = False
        for attempt in (1, 2):  # one retry: a single hiccup in an 8 s window must not end the sweep
            point = load(url, rate, duration, body, headers, cpus)
            points.append({"rate": rate, "attempt": attempt, "p99_ms": point["latency_ms"].get("p99"),
                           "errors": point["errors"], "send_lag_p99_ms": point["send_lag_ms"].get("p99")})
            if sustained(point):
                held = True
                break
            time.sleep(COOL_DOWN_S / 3)
        if not held:
            break
        best = rate
    return {"max_sustained_rate": best, "points": points}


def measure(target: Any, url: str, body: Path, headers: list[str], load_cpus: set[int], rate: float,
            duration: float, stream: bool = False) -> dict[str, Any]:
    pids = [pid for group in target.pids().values() for pid in group] if target else []
    before = cpu_seconds(pids)
    result = load(url, rate, duration, body, headers, load_cpus, stream)
    used = cpu_seconds(pids) - before
    if target and result["ok"]:
        result["cpu_s_per_1000"] = round(used / result["ok"] * 1000, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test of the harness)")
    parser.add_argument("--only", default="floor,hopfloor,omniroute,omniroute2,litellm,litellm2")
    parser.add_argument("--soak", action="store_true",
                        help="only the soak: 100 000 requests through OmniRoute, RSS growth per service")
    parser.add_argument("--sut-cpus", default="1")
    parser.add_argument("--load-cpus", default="0")
    args = parser.parse_args()
    only = {"omniroute"} if args.soak else set(args.only.split(","))
    sut_cpus = {int(c) for c in args.sut_cpus.split(",")}
    load_cpus = {int(c) for c in args.load_cpus.split(",")}
    duration = 3.0 if args.quick else 10.0
    sweep_duration = 3.0 if args.quick else 8.0
    rates: list[float] = [25, 50, 75, 100, 125, 150, 175, 200, 225, 250, 275, 300, 350, 400, 500, 600, 800]
    work = Path(tempfile.mkdtemp(prefix="omniroute-bench-"))
    body = bodies(work)
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(),
                              "sut_cpus": sorted(sut_cpus), "load_cpus": sorted(load_cpus), "targets": {}}
    mock = Mock(cpus=load_cpus)
    mock.start()
    try:
        if "floor" in only:
            url = f"{mock.base_url}/chat/completions"
            report["targets"]["floor"] = {
                "chat_100rps": measure(None, url, body["chat"], [], load_cpus, 100, duration),
                "stream_100rps": measure(None, url, body["stream"], [], load_cpus, 100, duration, True),
                f"stream_{STREAM_LOW_RATE}rps": measure(None, url, body["stream"], [], load_cpus, STREAM_LOW_RATE,
                                                       duration, True),
                "sweep": sweep(url, body["chat"], [], load_cpus, [*rates, 2000, 4000], sweep_duration)}
        if "hopfloor" in only:   # the do-nothing edge → router → executor chain, per transport
            from bench import hop_floor

            report["hop_floor"] = {transport: hop_floor._run(transport, 300 if args.quick else 2000,
                                                             min(sut_cpus))
                                   for transport in ("unary", "stream", "tcp")}
        for name, replicas in (("omniroute", 1), ("omniroute2", 2)):
            if name in only:
                report["targets"][name] = run_omniroute(mock, sut_cpus, load_cpus, work / name, body,
                                                        duration, sweep_duration, rates, replicas,
                                                        soak_only=args.soak)
        for name, workers in (("litellm", 1), ("litellm2", 2)):
            if name in only:
                report["targets"][name] = run_litellm(mock, sut_cpus, load_cpus, work / name, body,
                                                      duration, sweep_duration, rates, workers)
    finally:
        mock.stop()
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"{stamp}.json").write_text(json.dumps(report, indent=2))
    (RESULTS / f"{stamp}.md").write_text(render(report))
    print(render(report))


def run_omniroute(mock: Mock, sut_cpus: set[int], load_cpus: set[int], work: Path, body: dict[str, Path],
                  duration: float, sweep_duration: float, rates: list[float], replicas: int,
                  soak_only: bool) -> dict[str, Any]:
    target = OmniRoute(mock, sut_cpus, work, router_replicas=replicas, edge_workers=replicas)
    target.start()
    auth = [f"authorization: Bearer {OMNI_KEY}"]
    model = f"bench/{MODEL}"
    chat_url = f"{target.url}/v1/chat/completions"
    try:
        warm_up(chat_url, with_model(body["chat"], model), auth, load_cpus)
        if soak_only:
            return {"soak": soak_run(target, chat_url, with_model(body["chat"], model), auth, load_cpus)}
        result: dict[str, Any] = {
            "chat_100rps": measure(target, chat_url, with_model(body["chat"], model), auth, load_cpus, 100, duration),
            f"stream_{STREAM_LOW_RATE}rps": measure(target, chat_url, with_model(body["stream"], model), auth,
                                                    load_cpus, STREAM_LOW_RATE, duration, True),
            "stream_100rps": measure(target, chat_url, with_model(body["stream"], model), auth, load_cpus, 100,
                                     duration, True),
        }
        if replicas == 1:
            result["cache_hit_100rps"] = measure(target, chat_url, with_model(body["cacheable"], model), auth,
                                                 load_cpus, 100, duration)
            result["anthropic_client_100rps"] = measure(
                target, f"{target.url}/v1/messages", with_model(body["anthropic"], model),
                [f"x-api-key: {OMNI_KEY}", "anthropic-version: 2023-06-01"], load_cpus, 100, duration)
            result["anthropic_stream_100rps"] = measure(
                target, f"{target.url}/v1/messages", with_model(body["anthropic_stream"], model),
                [f"x-api-key: {OMNI_KEY}", "anthropic-version: 2023-06-01"], load_cpus, 100, duration, True)
        result["sweep"] = sweep(chat_url, with_model(body["chat"], model), auth, load_cpus, rates, sweep_duration)
        result["peak_rss_mb"] = {name: round(sum(peak_rss_mb(pid) for pid in pids), 1)
                                 for name, pids in target.pids().items()}
        return result
    finally:
        target.stop()


def soak_run(target: OmniRoute, url: str, body: Path, headers: list[str], load_cpus: set[int]) -> dict[str, Any]:
    """100 000 requests after a warm-up, at a rate one core sustains: does RSS keep growing?"""
    # Warm-up past the admin's first maintenance round (60 s after it starts), whose first
    # scheduled backup reads every table once: a one-time step, not growth per request.
    load(url, SOAK_RATE, 75, body, headers, load_cpus)
    before = {name: sum(rss_mb(pid) for pid in pids) for name, pids in target.pids().items()}
    result = load(url, SOAK_RATE, SOAK_REQUESTS / SOAK_RATE, body, headers, load_cpus)
    after = {name: sum(rss_mb(pid) for pid in pids) for name, pids in target.pids().items()}
    growth = {name: round((after[name] - before[name]) / before[name] * 100, 2) for name in before if before[name]}
    return {"requests": result["ok"], "errors": result["errors"], "rss_before_mb": before,
            "rss_after_mb": after, "rss_growth_pct": growth}


def run_litellm(mock: Mock, sut_cpus: set[int], load_cpus: set[int], work: Path, body: dict[str, Path],
                duration: float, sweep_duration: float, rates: list[float], workers: int) -> dict[str, Any]:
    target = LiteLLM(mock, sut_cpus, work, workers=workers)
    target.start()
    auth = [f"authorization: Bearer {LITELLM_KEY}"]
    url = f"{target.url}/v1/chat/completions"
    try:
        warm_up(url, body["chat"], auth, load_cpus)
        result = {"chat_100rps": measure(target, url, body["chat"], auth, load_cpus, 100, duration),
                  f"stream_{STREAM_LOW_RATE}rps": measure(target, url, body["stream"], auth, load_cpus,
                                                          STREAM_LOW_RATE, duration, True),
                  "stream_100rps": measure(target, url, body["stream"], auth, load_cpus, 100, duration, True),
                  "sweep": sweep(url, body["chat"], auth, load_cpus, rates, sweep_duration)}
        result["peak_rss_mb"] = {name: round(sum(peak_rss_mb(pid) for pid in pids), 1)
                                 for name, pids in target.pids().items()}
        return result
    finally:
        target.stop()


def _added(latency: dict[str, float], floor: dict[str, float]) -> dict[str, str]:
    """Latency over the floor's at the same percentile ("" where there is no floor)."""
    return {key: f"{latency.get(key, 0) - floor.get(key, 0):.2f}" if floor else "" for key in ("p50", "p99")}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    return f"{os.cpu_count()} × {cpu}, Python {sys.version.split()[0]}"


def render(report: dict[str, Any]) -> str:
    targets = report["targets"]
    floor = targets.get("floor", {})
    lines = [f"# Benchmark {report['date']}", "", f"Machine: {report['machine']}; system under test pinned to "
             f"CPU {report['sut_cpus']}, load generator and mock on CPU {report['load_cpus']}.", ""]
    lines += ["| target | scenario | p50 ms | p95 ms | p99 ms | added p50 | added p99 | TTFB p50 | added TTFB p50 | "
              "errors | CPU s / 1000 req |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, result in targets.items():
        for scenario, point in result.items():
            if not isinstance(point, dict) or "latency_ms" not in point:
                continue
            base_point = floor.get(scenario) or floor.get(
                f"stream_{STREAM_LOW_RATE}rps" if "stream" in scenario else "chat_100rps", {})
            lat = point["latency_ms"]
            added = _added(lat, base_point.get("latency_ms", {}) if name != "floor" else {})
            ttfb_added = (f"{point['ttfb_ms'].get('p50', 0) - base_point['ttfb_ms'].get('p50', 0):.2f}"
                          if name != "floor" and base_point and "stream" in scenario else "")
            lines.append(f"| {name} | {scenario} | {lat.get('p50', 0):.2f} | {lat.get('p95', 0):.2f} | "
                         f"{lat.get('p99', 0):.2f} | {added['p50']} | {added['p99']} | "
                         f"{point['ttfb_ms'].get('p50', 0):.2f} | {ttfb_added} | {sum(point['errors'].values())} | "
                         f"{point.get('cpu_s_per_1000', '')} |")
    lines += ["", "| target | highest rate with p99 < 50 ms, no errors | peak RSS MB |", "|---|---|---|"]
    for name, result in targets.items():
        rss = result.get("peak_rss_mb", {})
        lines.append(f"| {name} | {result.get('sweep', {}).get('max_sustained_rate', '')} req/s | "
                     f"{', '.join(f'{k} {v}' for k, v in rss.items())} |")
    def best(names: tuple[str, ...]) -> float:
        return max((targets[t].get("sweep", {}).get("max_sustained_rate", 0) for t in names if t in targets),
                   default=0)

    best_omni, best_lite = best(("omniroute", "omniroute2")), best(("litellm", "litellm2"))
    if best_omni and best_lite:
        lines += ["", f"Headline: OmniRoute sustains {best_omni} req/s vs LiteLLM's best {best_lite} req/s "
                      f"= {best_omni / best_lite:.1f}×."]
    if report.get("hop_floor"):
        lines += ["", "Hop floor (`bench/hop_floor.py`: a do-nothing edge → router → executor chain, sequential "
                      "calls 20 ms apart, the three processes on the system under test's CPU):", "",
                  "| transport | p50 ms | p99 ms | CPU ms per request (edge + router + executor) |",
                  "|---|---|---|---|"]
        for transport, point in report["hop_floor"].items():
            cpu_ms = (point["edge_cpu_us"] + point["router_cpu_us"] + point["executor_cpu_us"]) / 1000
            lines.append(f"| {transport} | {point['p50_us'] / 1000:.2f} | {point['p99_us'] / 1000:.2f} | "
                         f"{cpu_ms:.2f} ({point['edge_cpu_us']} + {point['router_cpu_us']} + "
                         f"{point['executor_cpu_us']} µs) |")
    if "soak" in targets.get("omniroute", {}):
        lines += ["", f"Soak: {json.dumps(targets['omniroute']['soak'])}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

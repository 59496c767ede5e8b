"""The edge's HTTP server, chosen by measurement (issue 20): the whole OmniRoute stack with its edge
under uvicorn (httptools, uvloop) or under granian (ASGI, uvloop, 1 worker, 1 runtime thread),
started in alternation (A, B, A, B, ...) so that other work on the machine hits both alike.
The stack is pinned to CPU 1, the mock and the load generator to CPU 0, as in bench.profile.

    python -m bench.edge_server [--rate 100] [--duration 15] [--rounds 3] [--stream]
    python -m bench.edge_server --isolated [--rates 100,1500] [--variants]   # a trivial ASGI app

Prints per round and medians: latency p50/p99, errors, CPU ms per request of the edge (its
process and children: granian's worker) and of all services."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from bench.run import bodies, load, with_model
from bench.targets import MODEL, OMNI_KEY, ROOT, Mock, OmniRoute, child_pids, cpu_seconds, wait_http
from omniroute.devstack import child
from omniroute.devstack.stack import free_port

SERVERS = ("uvicorn", "granian")
# --isolated only: granian's other settings, to see whether one of them closes the gap.
# st: the Rust runtime on the Python thread (ASGI defaults to a separate runtime thread: mt);
# rust: granian's own asyncio task implementation (experimental, Python < 3.12).
GRANIAN_VARIANTS = ("granian-st", "granian-rust")
SUT_CPUS, LOAD_CPUS = {1}, {0}
PAUSE_S = 2.0   # between warm-up and measurement: the warm-up's tail must not be charged

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Scope]]
Send = Callable[[Scope], Awaitable[None]]


async def trivial_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The server's own cost: read the body, answer a small JSON."""
    if scope["type"] == "lifespan":   # nothing to set up or tear down
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"11")]})
    await send({"type": "http.response.body", "body": b'{"ok":true}'})


def serve_trivial(server: str, port: int) -> None:
    if server.startswith("granian"):
        from granian.constants import Interfaces, Loops, RuntimeModes, TaskImpl
        from granian.server import Server

        Server("bench.edge_server:trivial_app", interface=Interfaces.ASGI, address="127.0.0.1", port=port,
               workers=1, runtime_threads=1, loop=Loops.uvloop, log_access=False,
               runtime_mode=RuntimeModes.st if server == "granian-st" else RuntimeModes.auto,
               task_impl=TaskImpl.rust if server == "granian-rust" else TaskImpl.asyncio).serve()
    else:
        import uvicorn

        uvicorn.run(trivial_app, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                    access_log=False, proxy_headers=False, log_level="warning")


def summary(result: dict[str, Any], used: dict[str, float]) -> dict[str, Any]:
    ok = max(result["ok"], 1)
    return {"p50_ms": result["latency_ms"].get("p50"), "p99_ms": result["latency_ms"].get("p99"),
            "errors": sum(result["errors"].values()), "ok": result["ok"],
            "achieved_rate": result["achieved_rate"], "send_lag_p99_ms": result["send_lag_ms"].get("p99"),
            "edge_cpu_ms": round(used["edge"] / ok * 1000, 3),
            "total_cpu_ms": round(sum(used.values()) / ok * 1000, 3)}


def measured(pids: dict[str, list[int]], url: str, rate: float, duration: float, body: Path,
             headers: list[str], stream: bool) -> dict[str, Any]:
    before = {name: cpu_seconds(group) for name, group in pids.items()}
    result = load(url, rate, duration, body, headers, LOAD_CPUS, stream)
    used = {name: cpu_seconds(group) - before[name] for name, group in pids.items()}
    return summary(result, used)


def stack_run(server: str, mock: Mock, work: Path, body: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One measurement on a fresh stack; once more on another if not one request got an answer (a
    stack that never worked, e.g. an edge that could not reach its router, measures nothing)."""
    result = fresh_stack_run(server, mock, work, body, args)
    if result["ok"] == 0:
        print(f"{server}: no answer at all ({result['errors']} errors, logs in {work}/logs): once more",
              flush=True)
        result = fresh_stack_run(server, mock, work.with_name(f"{work.name}-again"), body, args)
    return result


def fresh_stack_run(server: str, mock: Mock, work: Path, body: Path, args: argparse.Namespace) -> dict[str, Any]:
    target = OmniRoute(mock, SUT_CPUS, work, extra_env={"OMNIROUTE_EDGE_SERVER": server})
    target.start()
    try:
        url = f"{target.url}/v1/chat/completions"
        headers = [f"authorization: Bearer {OMNI_KEY}"]
        load(url, 50, 5, body, headers, LOAD_CPUS, args.stream)   # warm-up: imports, pools, caches
        time.sleep(PAUSE_S)
        return measured(target.pids(), url, args.rate, args.duration, body, headers, args.stream)
    finally:
        target.stop()


def isolated_run(server: str, rate: float, body: Path, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    process = subprocess.Popen(child.command("bench.edge_server", "--serve", server, "--port", str(port),
                                             cpus=SUT_CPUS), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_http(url)
        load(url, 50, 3, body, [], LOAD_CPUS)
        time.sleep(PAUSE_S)
        return measured({"edge": [process.pid, *child_pids(process.pid)]}, url, rate, args.duration, body,
                        [], False)
    finally:
        process.terminate()
        process.wait(15)


def median_of(rows: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("p50_ms", "p99_ms", "errors", "edge_cpu_ms", "total_cpu_ms")
    return {key: round(statistics.median(row[key] or 0 for row in rows), 3) for key in keys}


def print_table(title: str, results: dict[str, list[dict[str, Any]]]) -> None:
    print(f"\n{title}\n| server | round | p50 ms | p99 ms | errors | edge CPU ms/req | all CPU ms/req |")
    print("|---|---|---|---|---|---|---|")
    for server, rows in results.items():
        for number, row in enumerate(rows, 1):
            print(f"| {server} | {number} | {row['p50_ms']} | {row['p99_ms']} | {row['errors']} "
                  f"| {row['edge_cpu_ms']} | {row['total_cpu_ms']} |")
        median = median_of(rows)
        print(f"| **{server}** | median | {median['p50_ms']} | {median['p99_ms']} | {median['errors']:g} "
              f"| {median['edge_cpu_ms']} | {median['total_cpu_ms']} |")
    sys.stdout.flush()


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.edge_server")
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--isolated", action="store_true", help="a trivial ASGI app, no OmniRoute stack")
    parser.add_argument("--rates", default="100,1500", help="with --isolated: the rates to measure")
    parser.add_argument("--variants", action="store_true", help="with --isolated: granian's other settings too")
    parser.add_argument("--serve", choices=SERVERS + GRANIAN_VARIANTS, help=argparse.SUPPRESS)   # the --isolated child
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_trivial(args.serve, args.port)
        return
    work = Path(tempfile.mkdtemp(prefix="omniroute-edge-server-"))
    body = bodies(work)
    print(f"start {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load average {load_average()}")
    everything: dict[str, Any] = {}
    if args.isolated:
        for rate in (float(r) for r in args.rates.split(",")):
            servers = SERVERS + GRANIAN_VARIANTS if args.variants else SERVERS
            results: dict[str, list[dict[str, Any]]] = {server: [] for server in servers}
            for _ in range(args.rounds):
                for server in servers:
                    results[server].append(isolated_run(server, rate, body["chat"], args))
            print_table(f"trivial ASGI app, {rate:g} req/s", results)
            everything[f"isolated_{rate:g}"] = results
    else:
        chosen = with_model(body["stream" if args.stream else "chat"], f"bench/{MODEL}")
        mock = Mock(cpus=LOAD_CPUS)
        mock.start()
        try:
            results = {server: [] for server in SERVERS}
            for number in range(args.rounds):
                for server in SERVERS:
                    results[server].append(stack_run(server, mock, work / f"{server}-{number}", chosen, args))
                    print(f"round {number + 1} {server}: {json.dumps(results[server][-1])}", flush=True)
            print_table(f"OmniRoute stack, {args.rate:g} req/s{' streaming' if args.stream else ''}", results)
            everything["stack"] = results
        finally:
            mock.stop()
    print(f"\nend {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load average {load_average()}")
    print(json.dumps(everything))


if __name__ == "__main__":
    main()

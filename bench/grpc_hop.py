"""What one internal hop costs by itself, per transport: two processes on one CPU (as `make bench`
pins the system under test), 600-byte messages both ways, sequential calls 20 ms apart like a
lightly loaded gateway. The transports (`bench/hop_transports.py`): a grpc.aio unary call per
request; one long-lived grpc.aio bidi stream with requests multiplexed by id; raw asyncio TCP with
length-prefixed frames, multiplexed by id (the floor of any Python hop); HTTP/1.1 (aiohttp).

    python -m bench.grpc_hop [--calls 2000] [--cpu 1] [--kinds unary,bidi,tcp,http]

Prints, per transport, p50 and p99 latency and CPU per call in the client and in the server (each
process's CPU time over the measured calls only, divided by the calls). The gateway makes two
hops per request (edge → router → executor), so this is the floor under its added latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import time

from bench.hop_transports import CLIENTS, MESSAGE_SIZE, SERVERS
from bench.targets import cpu_seconds
from omniroute.devstack import child
from omniroute.devstack.stack import free_port

_PAUSE_S = 0.02
_WARM_UP_CALLS = 50


def _percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


async def _measure(kind: str, port: int, server_pid: int, calls: int) -> dict[str, float]:
    client = await CLIENTS[kind](port)
    for _ in range(_WARM_UP_CALLS):
        if len(await client.call()) != MESSAGE_SIZE:
            raise AssertionError(f"{kind}: an answer is not {MESSAGE_SIZE} bytes")
    latencies = []
    # Both processes' CPU over the same window: the measured calls and their pauses.
    client_before, server_before = time.process_time(), cpu_seconds([server_pid])
    for _ in range(calls):
        started = time.perf_counter()
        await client.call()
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(_PAUSE_S)
    client_cpu, server_cpu = time.process_time() - client_before, cpu_seconds([server_pid]) - server_before
    await client.close()
    latencies.sort()
    return {"p50_us": round(_percentile(latencies, 0.5) * 1e6), "p99_us": round(_percentile(latencies, 0.99) * 1e6),
            "client_cpu_us": round(client_cpu / calls * 1e6), "server_cpu_us": round(server_cpu / calls * 1e6)}


def _wait_for_port(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _run(kind: str, calls: int, cpu: int) -> dict[str, float]:
    port = free_port()
    # Pinned by the devstack's child launcher (no preexec_fn: omniroute/devstack/child.py).
    server = subprocess.Popen(child.command("bench.grpc_hop", "--role", "server", "--kind", kind,
                                            "--port", str(port), cpus={cpu}))
    try:
        _wait_for_port(port)
        out = subprocess.run(child.command("bench.grpc_hop", "--role", "client", "--kind", kind, "--port", str(port),
                                           "--server-pid", str(server.pid), "--calls", str(calls), cpus={cpu}),
                             capture_output=True, text=True, check=True)
        result: dict[str, float] = json.loads(out.stdout)
        return result
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_hop")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--cpu", type=int, default=1, help="the one CPU both processes run on")
    parser.add_argument("--kinds", default=",".join(CLIENTS), help="comma-separated, of: " + ", ".join(CLIENTS))
    parser.add_argument("--role", choices=["server", "client"], help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=list(CLIENTS), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import uvloop

    if args.role == "server":
        uvloop.run(SERVERS[args.kind](args.port))
        return
    if args.role == "client":
        print(json.dumps(uvloop.run(_measure(args.kind, args.port, args.server_pid, args.calls))))
        return
    results = {kind: _run(kind, args.calls, args.cpu) for kind in args.kinds.split(",")}
    print(json.dumps({"machine_cpus": os.cpu_count(), "cpu": args.cpu, "calls": args.calls,
                      "load_average": os.getloadavg(), **results}, indent=1))


if __name__ == "__main__":
    main()

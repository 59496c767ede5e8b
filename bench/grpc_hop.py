"""What one internal hop costs by itself: a grpc.aio unary call between two processes pinned to
one core (as `make bench` pins the system under test), next to the same exchange as plain
HTTP/1.1 (aiohttp on both sides). Sequential calls 20 ms apart, like a lightly loaded gateway.

    python -m bench.grpc_hop [--calls 300]

Prints p50 latency and CPU per call on each side. The gateway makes two such hops per request
(edge → router → executor), so this is the floor under its added latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import time
from typing import Any

from bench.targets import cpu_seconds
from omniroute.devstack import child
from omniroute.devstack.stack import free_port

_PAYLOAD = b"x" * 600  # about a chat request / answer
_PAUSE_S = 0.02


async def _grpc_server(port: int) -> None:
    import grpc

    async def unary(request: bytes, context: Any) -> bytes:
        return _PAYLOAD

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "bench.Hop", {"Call": grpc.unary_unary_rpc_method_handler(unary)}),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def _http_server(port: int) -> None:
    from aiohttp import web

    async def call(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=_PAYLOAD)

    app = web.Application()
    app.router.add_post("/call", call)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


async def _client(kind: str, port: int, calls: int) -> dict[str, float]:
    if kind == "grpc":
        import grpc

        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        method = channel.unary_unary("/bench.Hop/Call")

        async def one() -> None:
            await method(_PAYLOAD)
    else:
        import aiohttp

        session = aiohttp.ClientSession()

        async def one() -> None:
            async with session.post(f"http://127.0.0.1:{port}/call", data=_PAYLOAD) as response:
                await response.read()

    for _ in range(50):
        await one()
    latencies = []
    cpu_before = time.process_time()
    for _ in range(calls):
        started = time.perf_counter()
        await one()
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(_PAUSE_S)
    cpu = time.process_time() - cpu_before
    latencies.sort()
    return {"p50_us": round(latencies[len(latencies) // 2] * 1e6), "client_cpu_us": round(cpu / calls * 1e6)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_hop")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--cpu", type=int, default=1)
    parser.add_argument("--role", choices=["server", "client"], help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=["grpc", "http"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import uvloop

    if args.role == "server":
        uvloop.run(_grpc_server(args.port) if args.kind == "grpc" else _http_server(args.port))
        return
    if args.role == "client":
        print(json.dumps(uvloop.run(_client(args.kind, args.port, args.calls))))
        return
    results = {}
    for kind in ("grpc", "http"):
        port = free_port()
        # Pinned by the devstack's child launcher (no preexec_fn: omniroute/devstack/child.py).
        server = subprocess.Popen(child.command("bench.grpc_hop", "--role", "server", "--kind", kind,
                                                "--port", str(port), cpus={args.cpu}))
        try:
            time.sleep(2)
            before = cpu_seconds([server.pid])
            out = subprocess.run(child.command("bench.grpc_hop", "--role", "client", "--kind", kind,
                                               "--port", str(port), "--calls", str(args.calls), cpus={args.cpu}),
                                 capture_output=True, text=True, check=True)
            result = json.loads(out.stdout)
            # The server also served the 50 warm-up calls.
            result["server_cpu_us"] = round((cpu_seconds([server.pid]) - before) / (args.calls + 50) * 1e6)
            results[kind] = result
        finally:
            server.terminate()
            server.wait(10)
    print(json.dumps({"machine_cpus": os.cpu_count(), **results}, indent=1))


if __name__ == "__main__":
    main()

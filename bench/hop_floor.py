"""The hop floor: a do-nothing edge → router → executor chain on the gateway's own transport, three
processes on one CPU (as `make bench` pins the system under test). The "router" forwards each
request to the "executor", which answers at once with a 600-byte response; the client stands in
for the edge (no HTTP). The transports the gateway has (OMNIROUTE_HOP_TRANSPORT): `unary`
(ChatWhole → ExecuteWhole, one gRPC call per hop), `stream` (omniroute.hop_streams: a message
on a long-lived gRPC session stream per hop) and `tcp` (the same session messages on plain TCP,
hop_streams.tcp), with the servers' answer functions served the same way for all, as the real
servicers do. What the gateway adds over this floor is its own work.

    python -m bench.hop_floor [--calls 2000] [--cpu 1] [--transports unary,stream,tcp] [--rounds 1] [--pause-ms 20]

Sequential calls 20 ms apart (bench/grpc_hop.py's method; --pause-ms); prints p50, p99 and CPU per request in
each of the three processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from bench.grpc_hop import _percentile, _wait_for_port
from bench.targets import cpu_seconds
from omniroute import runtime
from omniroute.devstack import child
from omniroute.devstack.stack import free_port
from omniroute.executor_pool import ExecutorPool
from omniroute.hop_streams import server as hop_server
from omniroute.hop_streams.stubs import RouterStreams
from omniroute.hop_streams.tcp import TcpSessionServer
from omniroute.settings import Settings
from omniroute.v1 import common_pb2, executor_pb2, executor_pb2_grpc, router_pb2, router_pb2_grpc

_PAUSE_MS = 20.0   # between calls, by default
_WARM_UP_CALLS = 50
_RESPONSE = common_pb2.AnswerEvent(response=b"x" * 600, format=common_pb2.OPENAI_CHAT)
_BODY = b'{"model":"m","messages":[{"role":"user","content":"' + b"y" * 540 + b'"}]}'


class _Executor(executor_pb2_grpc.ExecutorServicer):
    def __init__(self) -> None:
        self.tcp = TcpSessionServer("/omniroute.v1.Executor/Session", executor_pb2.ExecutorSessionIn, self.answer)

    async def answer(self, request: Any, parent: Any) -> AsyncIterator[common_pb2.AnswerEvent]:
        yield _RESPONSE

    async def ExecuteWhole(self, request: executor_pb2.ExecuteRequest, context: Any) -> common_pb2.AnswerEvents:
        return common_pb2.AnswerEvents(events=[event async for event in self.answer(request, None)])

    async def Session(self, requests: Any, context: Any) -> AsyncIterator[common_pb2.SessionOut]:
        async for out in hop_server.serve(requests, context, self.answer, self.tcp.port):
            yield out


class _Router(router_pb2_grpc.RouterServicer):
    def __init__(self, pool: ExecutorPool) -> None:
        self._pool = pool
        self.tcp = TcpSessionServer("/omniroute.v1.Router/Session", router_pb2.RouterSessionIn, self.answer)

    async def answer(self, request: router_pb2.ChatRequest, parent: Any) -> AsyncIterator[common_pb2.AnswerEvent]:
        call = executor_pb2.ExecuteRequest(request_id=request.request_id, body=request.body)
        whole = await self._pool.stub("openai").ExecuteWhole(call)
        for event in whole.events:
            yield event

    async def ChatWhole(self, request: router_pb2.ChatRequest, context: Any) -> common_pb2.AnswerEvents:
        return common_pb2.AnswerEvents(events=[event async for event in self.answer(request, None)])

    async def Session(self, requests: Any, context: Any) -> AsyncIterator[common_pb2.SessionOut]:
        async for out in hop_server.serve(requests, context, self.answer, self.tcp.port):
            yield out


async def _serve(role: str, port: int, next_port: int, transport: str) -> None:
    server = grpc.aio.server(options=runtime.SERVER_OPTIONS)
    servicer: _Executor | _Router
    if role == "executor":
        servicer = _Executor()
        executor_pb2_grpc.add_ExecutorServicer_to_server(servicer, server)
    else:
        pool = ExecutorPool(Settings(executor_addr=f"127.0.0.1:{next_port}", hop_transport=transport),
                            transport=transport)
        servicer = _Router(pool)
        router_pb2_grpc.add_RouterServicer_to_server(servicer, server)
    await servicer.tcp.start("127.0.0.1", 0)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def _measure(port: int, transport: str, pids: list[int], calls: int,
                   pause_ms: float = _PAUSE_MS) -> dict[str, float]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    unary = router_pb2_grpc.RouterStub(channel)
    router: Any = RouterStreams(Settings(router_addr=f"127.0.0.1:{port}", hop_transport=transport), unary) \
        if transport != "unary" else unary
    request = router_pb2.ChatRequest(request_id="r", body=_BODY, model="m")
    for _ in range(_WARM_UP_CALLS):
        answer = await router.ChatWhole(request)
        assert answer.events[0].response == _RESPONSE.response
    latencies = []
    client_before, before = time.process_time(), [cpu_seconds([pid]) for pid in pids]
    for _ in range(calls):
        started = time.perf_counter()
        await router.ChatWhole(request)
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(pause_ms / 1000)
    client_cpu = time.process_time() - client_before
    router_cpu, executor_cpu = (cpu_seconds([pid]) - was for pid, was in zip(pids, before, strict=True))
    if transport != "unary":
        await router.close()
    await channel.close()
    latencies.sort()
    return {"p50_us": round(_percentile(latencies, 0.5) * 1e6), "p99_us": round(_percentile(latencies, 0.99) * 1e6),
            "edge_cpu_us": round(client_cpu / calls * 1e6), "router_cpu_us": round(router_cpu / calls * 1e6),
            "executor_cpu_us": round(executor_cpu / calls * 1e6)}


def _run(transport: str, calls: int, cpu: int, pause_ms: float = _PAUSE_MS) -> dict[str, float]:
    executor_port, router_port = free_port(), free_port()
    common = ["--transport", transport]
    executor = subprocess.Popen(child.command("bench.hop_floor", "--role", "executor", "--port", str(executor_port),
                                              *common, cpus={cpu}))
    router = subprocess.Popen(child.command("bench.hop_floor", "--role", "router", "--port", str(router_port),
                                            "--next-port", str(executor_port), *common, cpus={cpu}))
    try:
        _wait_for_port(executor_port)
        _wait_for_port(router_port)
        out = subprocess.run(child.command("bench.hop_floor", "--role", "client", "--port", str(router_port),
                                           "--pids", f"{router.pid},{executor.pid}", "--calls", str(calls),
                                           "--pause-ms", str(pause_ms), *common, cpus={cpu}),
                             capture_output=True, text=True, check=True)
        result: dict[str, float] = json.loads(out.stdout)
        return result
    finally:
        for process in (router, executor):
            process.terminate()
            process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hop_floor")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--cpu", type=int, default=1, help="the one CPU the three processes run on")
    parser.add_argument("--transports", default="unary,stream,tcp")
    parser.add_argument("--rounds", type=int, default=1, help="each transport this many times, interleaved")
    parser.add_argument("--pause-ms", type=float, default=_PAUSE_MS,
                        help="between calls (idle time: the per-call cost grows with it)")
    parser.add_argument("--role", choices=["executor", "router", "client"], help=argparse.SUPPRESS)
    parser.add_argument("--transport", choices=["unary", "stream", "tcp"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--next-port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--pids", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import uvloop

    if args.role in ("executor", "router"):
        uvloop.run(_serve(args.role, args.port, args.next_port, args.transport))
        return
    if args.role == "client":
        pids = [int(pid) for pid in args.pids.split(",")]
        print(json.dumps(uvloop.run(_measure(args.port, args.transport, pids, args.calls, args.pause_ms))))
        return
    transports = args.transports.split(",")
    rounds: dict[str, list[dict[str, float]]] = {transport: [] for transport in transports}
    for _ in range(args.rounds):
        for transport in transports:
            rounds[transport].append(_run(transport, args.calls, args.cpu, args.pause_ms))
    results = {transport: runs[0] if len(runs) == 1 else {"median": _medians(runs), "runs": runs}
               for transport, runs in rounds.items()}
    print(json.dumps({"cpu": args.cpu, "calls": args.calls, "pause_ms": args.pause_ms,
                      "load_average": os.getloadavg(), **results}, indent=1))


def _medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.median(run[name] for run in runs) for name in runs[0]}


if __name__ == "__main__":
    main()

"""Executor process: `python -m omniroute_executor --family openai[,anthropic…|mcp|all]`.

Family `mcp` (included in `all`) is the MCP gateway's workload (issue 21): the process also
serves `McpUpstream` and keeps the stdio tool servers it runs. A deployment can run it alone
(`--family mcp`) and point the router at it with EXECUTOR_ADDRS "mcp=<host:port>"."""

from __future__ import annotations

import argparse
import logging

import grpc

from omniroute import runtime, settings, telemetry
from omniroute.v1 import executor_pb2_grpc, mcp_pb2_grpc
from omniroute_executor.clients import HttpClients, new_client
from omniroute_executor.families import FAMILIES, OPERATION_ONLY
from omniroute_executor.families.base import Family
from omniroute_executor.mcp.servicer import McpUpstreamServicer
from omniroute_executor.servicer import ExecutorServicer
from omniroute_executor.upstream import DirectClient

log = logging.getLogger("omniroute.executor")
MCP_FAMILY = "mcp"


def _serves_mcp(spec: str) -> bool:
    return spec == "all" or MCP_FAMILY in {name.strip() for name in spec.split(",")}


def _families(spec: str) -> dict[str, Family]:
    if spec == "all":
        return dict(FAMILIES)
    chosen = {}
    for name in spec.split(","):
        if name.strip() in OPERATION_ONLY or name.strip() == MCP_FAMILY:
            continue  # served by operations/ (no chat wire format)
        if name.strip() not in FAMILIES:
            raise SystemExit(f"unknown family {name!r}; known: {', '.join(sorted(FAMILIES))}")
        chosen[name.strip()] = FAMILIES[name.strip()]
    return chosen


async def main() -> None:
    config = settings.load()
    parser = argparse.ArgumentParser(prog="omniroute_executor")
    parser.add_argument("--family", default=config.executor_families,
                        help="provider families served, comma-separated, or 'all'")
    args = parser.parse_args()
    telemetry.setup("omniroute-executor")
    families = _families(args.family)
    # One pooled client for every upstream call of this process (keep-alive, HTTP/2 over TLS).
    # Proxied accounts get one pooled client per distinct proxy (clients.HttpClients).
    http = HttpClients(new_client(config.upstream_timeout_s), config.upstream_timeout_s)
    direct = DirectClient()
    servicer = ExecutorServicer(families, http, config.upstream_timeout_s, direct)
    mcp = McpUpstreamServicer(allow_private=config.allow_private_upstreams) if _serves_mcp(args.family) else None
    log.info("serving families: %s", ", ".join([*families, *([MCP_FAMILY] if mcp else [])]))

    def register(server: grpc.aio.Server) -> None:
        executor_pb2_grpc.add_ExecutorServicer_to_server(servicer, server)
        if mcp is not None:
            mcp_pb2_grpc.add_McpUpstreamServicer_to_server(mcp, server)

    try:
        await runtime.serve_grpc(register, host=config.bind_host, port=config.executor_port,
                                 tcp_sessions=servicer.tcp_sessions,
                                 service_names=["omniroute.v1.Executor",
                                                *(["omniroute.v1.McpUpstream"] if mcp else [])])
    finally:
        if mcp is not None:
            await mcp.aclose()  # the stdio tool servers this process started
        await http.aclose()
        await direct.aclose()
        telemetry.shutdown()


if __name__ == "__main__":
    runtime.setup_logging("executor")
    runtime.run(main)

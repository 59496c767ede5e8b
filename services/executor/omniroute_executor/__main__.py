"""Executor process: `python -m omniroute_executor --family openai[,anthropic…|all]`."""

from __future__ import annotations

import argparse
import logging

from omniroute import runtime, settings, telemetry
from omniroute.v1 import executor_pb2_grpc
from omniroute_executor.clients import HttpClients, new_client
from omniroute_executor.families import FAMILIES, OPERATION_ONLY
from omniroute_executor.families.base import Family
from omniroute_executor.servicer import ExecutorServicer
from omniroute_executor.upstream import DirectClient

log = logging.getLogger("omniroute.executor")


def _families(spec: str) -> dict[str, Family]:
    if spec == "all":
        return dict(FAMILIES)
    chosen = {}
    for name in spec.split(","):
        if name.strip() in OPERATION_ONLY:
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
    log.info("serving families: %s", ", ".join(families))
    try:
        await runtime.serve_grpc(lambda server: executor_pb2_grpc.add_ExecutorServicer_to_server(
            servicer, server), host=config.bind_host, port=config.executor_port,
            service_names=["omniroute.v1.Executor"])
    finally:
        await http.aclose()
        await direct.aclose()
        telemetry.shutdown()


if __name__ == "__main__":
    runtime.setup_logging("executor")
    runtime.run(main)

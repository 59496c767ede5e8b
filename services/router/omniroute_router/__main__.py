"""Router process: `python -m omniroute_router`."""

from __future__ import annotations

import contextlib
import logging

import grpc
import nats.errors

from omniroute import control, runtime, settings, telemetry
from omniroute.bus.connection import connect, ensure_stream
from omniroute.bus.publisher import EventPublisher
from omniroute.config.watcher import SnapshotHolder
from omniroute.executor_pool import ExecutorPool
from omniroute.shared_state.mcp_health import McpBreakers
from omniroute.v1 import mcp_pb2_grpc, router_pb2_grpc
from omniroute_router.mcp.record import McpRecorder
from omniroute_router.mcp.servicer import McpGatewayServicer
from omniroute_router.mcp.upstream import McpUpstreamClient
from omniroute_router.selection.oauth_tokens import OAuthTokens
from omniroute_router.servicer import RouterServicer
from omniroute_router.state import RouterState

log = logging.getLogger("omniroute.router")


async def main() -> None:
    config = settings.load()
    telemetry.setup("omniroute-router")
    nats_client = await connect(config.nats_url, name="omniroute-router")
    await ensure_stream(nats_client, config)
    publisher = EventPublisher(nats_client, max_buffer=config.event_buffer_max,
                               max_age_s=config.event_buffer_max_age_s)
    publisher.start()
    snapshot = SnapshotHolder(config, decrypt=True)
    await snapshot.start(nats_client)
    await control.listen(nats_client, config, "router")  # admin's restart / shutdown orders
    executors = ExecutorPool(config, transport=config.hop_transport)
    shared = RouterState.connect(config)
    servicer = RouterServicer(config, snapshot, executors, publisher, shared)
    mcp_upstream = McpUpstreamClient(config)  # the MCP gateway (issue 21): the MCP executor
    mcp_gateway = McpGatewayServicer(snapshot, mcp_upstream, shared.limiter,
                                     McpBreakers(shared.redis, config.env), McpRecorder(config, publisher),
                                     OAuthTokens(shared.redis, executors, config))

    def register(server: grpc.aio.Server) -> None:
        router_pb2_grpc.add_RouterServicer_to_server(servicer, server)
        mcp_pb2_grpc.add_McpGatewayServicer_to_server(mcp_gateway, server)

    try:
        await runtime.serve_grpc(register, host=config.bind_host, port=config.router_port,
                                 service_names=["omniroute.v1.Router", "omniroute.v1.McpGateway"],
                                 tcp_sessions=servicer.tcp_sessions)
    finally:
        # The publisher kept retrying while the server drained; it gets 5 s more (the process
        # is killed OMNIROUTE_DRAIN_S + 10 s after SIGTERM), then logs what it could not send.
        await publisher.close(timeout=5.0)
        await snapshot.stop()
        await executors.close()
        await mcp_upstream.close()
        await shared.close()
        if nats_client.is_connected:
            await nats_client.drain()
        else:   # NATS away: drain() refuses a reconnecting client; what is lost was logged above.
            # nats-py's close() then writes to the dead transport (RuntimeError under uvloop).
            with contextlib.suppress(OSError, RuntimeError, nats.errors.Error):
                await nats_client.close()
        telemetry.shutdown()


if __name__ == "__main__":
    runtime.setup_logging("router")
    runtime.run(main)

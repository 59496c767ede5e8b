"""The router's side of McpUpstream: the server as a target (its credentials decrypted in the
router's snapshot, an OAuth connection's access token as Authorization) and the MCP executor's
stub. Executors alone reach the tool servers; the router only names them."""

from __future__ import annotations

import grpc

from omniroute import runtime
from omniroute.config.snapshot import ConfigSnapshot, Connection, McpServer
from omniroute.executor_pool import RECONNECT_OPTIONS
from omniroute.settings import Settings
from omniroute.v1 import mcp_pb2, mcp_pb2_grpc

MCP_FAMILY = "mcp"  # EXECUTOR_ADDRS "mcp=<address>" names the MCP executor (else EXECUTOR_ADDR)
# gRPC deadline beyond the server's own timeout: the executor answers a timeout itself (kind
# timeout); this only bounds a lost executor.
DEADLINE_MARGIN_S = 5.0


class McpUpstreamClient:
    def __init__(self, settings: Settings) -> None:
        self._address = settings.executor_address(MCP_FAMILY)
        self._channel: grpc.aio.Channel | None = None
        self._stub: mcp_pb2_grpc.McpUpstreamStub | None = None

    @property
    def stub(self) -> mcp_pb2_grpc.McpUpstreamStub:
        if self._stub is None:
            self._channel = runtime.channel(self._address, RECONNECT_OPTIONS)
            self._stub = mcp_pb2_grpc.McpUpstreamStub(self._channel)
        return self._stub

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


def oauth_connection(snapshot: ConfigSnapshot, connection_id: str) -> Connection | None:
    for provider in snapshot.providers.values():
        for connection in provider.connections:
            if connection.id == connection_id:
                return connection
    return None


def target(server: McpServer, *, bearer: str = "") -> mcp_pb2.McpServerTarget:
    headers = dict(server.headers)
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    return mcp_pb2.McpServerTarget(server_id=server.id, transport=server.transport, url=server.url,
                                   command=list(server.command), headers=headers, env=dict(server.env),
                                   timeout_s=server.timeout_s)


def deadline(server: McpServer) -> float:
    return max(server.timeout_s, 1.0) + DEADLINE_MARGIN_S

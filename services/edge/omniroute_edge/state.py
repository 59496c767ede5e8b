"""What the edge process holds for its whole life: config snapshot, router stub, pools."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from nats.aio.client import Client

from omniroute.bus.publisher import EventPublisher
from omniroute.config.watcher import SnapshotHolder
from omniroute.hop_streams.stubs import RouterStreams
from omniroute.settings import Settings
from omniroute.v1 import mcp_pb2_grpc, router_pb2_grpc


@dataclass
class EdgeState:
    settings: Settings
    config: SnapshotHolder
    router: router_pb2_grpc.RouterStub | RouterStreams   # OMNIROUTE_HOP_TRANSPORT
    admin: httpx.AsyncClient
    nats: Client | None = None
    publisher: EventPublisher | None = None  # usage events of the requests the edge refuses
    mcp: mcp_pb2_grpc.McpGatewayStub | None = None  # the router's MCP gateway (/mcp)

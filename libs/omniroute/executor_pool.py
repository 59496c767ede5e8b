"""Executor stubs by provider family, one long-lived channel per address (router and admin)."""

from __future__ import annotations

from typing import cast

import grpc

from omniroute import runtime
from omniroute.hop_streams.stubs import ExecutorStreams
from omniroute.settings import Settings
from omniroute.v1 import executor_pb2_grpc

#: How soon a channel tries again to reach an executor that went away. gRPC's default backoff
#: (1 s, growing 1.6 times per failed attempt, up to 120 s) kept a router failing for seconds
#: after a restarted executor listened again, each router on its own schedule. A refused
#: connection to a local peer costs next to nothing, so every router retries every 250 ms
#: (+/- gRPC's 20 % jitter) for as long as the executor is away. (The connect timeout itself,
#: grpc.min_reconnect_backoff_ms, stays at its default: a slow network must still connect.)
RECONNECT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 250),
]


class ExecutorPool:
    """`transport`: "unary" (a gRPC call per request; the admin's occasional calls) or "stream"
    (requests as messages on long-lived session streams, omniroute.hop_streams: the router's hot
    path, OMNIROUTE_HOP_TRANSPORT). Both stubs answer `Execute` and `ExecuteWhole` alike."""

    def __init__(self, settings: Settings, transport: str = "unary") -> None:
        self._settings = settings
        self._streams = transport in ("stream", "tcp")   # ExecutorStreams reads which from settings
        self._stubs: dict[str, executor_pb2_grpc.ExecutorStub | ExecutorStreams] = {}
        self._channels: list[grpc.aio.Channel] = []

    def stub(self, family: str) -> executor_pb2_grpc.ExecutorStub:
        """The family's stub. ExecutorStreams answers Execute / ExecuteWhole with the stub's
        signature and errors, so callers hold either as an ExecutorStub."""
        address = self._settings.executor_address(family)
        stub = self._stubs.get(address)
        if stub is None:
            if self._streams:
                stub = self._stubs[address] = ExecutorStreams(self._settings, address)
            else:
                channel = runtime.channel(address, RECONNECT_OPTIONS)
                self._channels.append(channel)
                stub = self._stubs[address] = executor_pb2_grpc.ExecutorStub(channel)
        return cast(executor_pb2_grpc.ExecutorStub, stub)

    def attempts(self, family: str) -> int:
        """How many times a call refused before its first byte (UNAVAILABLE) is made: once per
        listed replica (`ipv4:a,b` lists two), and at least twice: behind one name (a headless
        Service) there may be several, and round robin sends the next try to another one."""
        address = self._settings.executor_address(family)
        return max(2, len(address.split(",")))

    async def close(self) -> None:
        for stub in self._stubs.values():
            if isinstance(stub, ExecutorStreams):
                await stub.close()
        for channel in self._channels:
            await channel.close()

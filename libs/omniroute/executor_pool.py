"""Executor stubs by provider family, one long-lived channel per address (router and admin)."""

from __future__ import annotations

import grpc

from omniroute import runtime
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
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stubs: dict[str, executor_pb2_grpc.ExecutorStub] = {}
        self._channels: list[grpc.aio.Channel] = []

    def stub(self, family: str) -> executor_pb2_grpc.ExecutorStub:
        address = self._settings.executor_address(family)
        stub = self._stubs.get(address)
        if stub is None:
            channel = runtime.channel(address, RECONNECT_OPTIONS)
            self._channels.append(channel)
            stub = self._stubs[address] = executor_pb2_grpc.ExecutorStub(channel)
        return stub

    def attempts(self, family: str) -> int:
        """How many times a call refused before its first byte (UNAVAILABLE) is made: once per
        listed replica (`ipv4:a,b` lists two), and at least twice: behind one name (a headless
        Service) there may be several, and round robin sends the next try to another one."""
        address = self._settings.executor_address(family)
        return max(2, len(address.split(",")))

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

"""Executor stubs by provider family, one long-lived channel per address (router and admin)."""

from __future__ import annotations

from omniroute import runtime
from omniroute.settings import Settings
from omniroute.v1 import executor_pb2_grpc


class ExecutorPool:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stubs: dict[str, executor_pb2_grpc.ExecutorStub] = {}
        self._channels: list[object] = []

    def stub(self, family: str) -> executor_pb2_grpc.ExecutorStub:
        address = self._settings.executor_address(family)
        stub = self._stubs.get(address)
        if stub is None:
            channel = runtime.channel(address)
            self._channels.append(channel)
            stub = self._stubs[address] = executor_pb2_grpc.ExecutorStub(channel)
        return stub

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()  # type: ignore[attr-defined]

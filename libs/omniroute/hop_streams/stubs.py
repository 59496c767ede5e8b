"""The gRPC stubs' streaming and whole calls over session streams, with the stubs' signatures
(`metadata` = the trace context, `timeout` = the deadline) and the same errors (AioRpcError), so
that callers do not change with OMNIROUTE_HOP_TRANSPORT."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from omniroute.hop_streams.client import Pending
from omniroute.hop_streams.peers import PeerStreams
from omniroute.settings import Settings
from omniroute.v1 import common_pb2, executor_pb2, router_pb2, router_pb2_grpc

Metadata = Sequence[tuple[str, str]] | None


def _options(metadata: Metadata, timeout: float | None, whole: bool, window: int) -> common_pb2.SessionStart:
    return common_pb2.SessionStart(trace=dict(metadata or ()), whole=whole, window=window,
                                   timeout_ms=max(1, round(timeout * 1000)) if timeout else 0)


class StreamingCall:
    """What `stub.Chat(...)` / `stub.Execute(...)` return: iterate the events; `cancel()`."""

    def __init__(self, peer: PeerStreams, request: Any, options: common_pb2.SessionStart) -> None:
        self._peer = peer
        self._request = request
        self._options = options
        self._pending: Pending | None = None
        self._cancelled = False

    def __aiter__(self) -> AsyncIterator[common_pb2.AnswerEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[common_pb2.AnswerEvent]:
        if self._cancelled:
            return
        pending, frame = await self._peer.start(self._request, self._options, self._attempt)
        current: common_pb2.SessionEvents | None = frame
        try:
            while current is not None:
                for event in current.events:
                    yield event
                current = await pending.next()
        finally:
            pending.cancel()   # a caller that stopped reading early cancels the request there too

    def _attempt(self, pending: Pending) -> None:
        self._pending = pending

    def cancel(self) -> bool:
        self._cancelled = True
        if self._pending is not None:
            self._pending.cancel()
        return True


async def _whole(peer: PeerStreams, request: Any, options: common_pb2.SessionStart) -> common_pb2.AnswerEvents:
    pending, frame = await peer.start(request, options)
    answer = common_pb2.AnswerEvents(events=frame.events)
    while not frame.end:   # a whole answer is one frame; read on should a server ever split it
        following = await pending.next()
        if following is None:
            break
        frame = following
        answer.events.extend(frame.events)
    return answer


def _peer(settings: Settings, address: str, method: str, frame_type: Any, message_type: Any) -> PeerStreams:
    return PeerStreams(address, method, frame_type, message_type, streams_per_address=settings.hop_streams_per_peer,
                       window=settings.hop_window, dns_refresh_s=settings.hop_dns_refresh_s,
                       tcp=settings.hop_transport == "tcp")


class RouterStreams:
    """`Router.Chat` / `ChatWhole` over session streams; `ListModels` stays a unary call."""

    def __init__(self, settings: Settings, unary: router_pb2_grpc.RouterStub, address: str | None = None) -> None:
        self.peer = _peer(settings, address or settings.router_addr, "/omniroute.v1.Router/Session",
                          router_pb2.RouterFrame, router_pb2.RouterSessionIn)
        self._unary = unary

    def Chat(self, request: router_pb2.ChatRequest, metadata: Metadata = None,
             timeout: float | None = None) -> StreamingCall:
        return StreamingCall(self.peer, request, _options(metadata, timeout, False, self.peer.window))

    async def ChatWhole(self, request: router_pb2.ChatRequest, metadata: Metadata = None,
                        timeout: float | None = None) -> common_pb2.AnswerEvents:
        return await _whole(self.peer, request, _options(metadata, timeout, True, self.peer.window))

    def ListModels(self, request: router_pb2.ListModelsRequest, **kwargs: Any) -> Any:
        return self._unary.ListModels(request, **kwargs)

    async def close(self) -> None:
        await self.peer.close()


class ExecutorStreams:
    """`Executor.Execute` / `ExecuteWhole` over session streams."""

    def __init__(self, settings: Settings, address: str) -> None:
        self.peer = _peer(settings, address, "/omniroute.v1.Executor/Session",
                          executor_pb2.ExecutorFrame, executor_pb2.ExecutorSessionIn)

    def Execute(self, request: executor_pb2.ExecuteRequest, metadata: Metadata = None,
                timeout: float | None = None) -> StreamingCall:
        return StreamingCall(self.peer, request, _options(metadata, timeout, False, self.peer.window))

    async def ExecuteWhole(self, request: executor_pb2.ExecuteRequest, metadata: Metadata = None,
                           timeout: float | None = None) -> common_pb2.AnswerEvents:
        return await _whole(self.peer, request, _options(metadata, timeout, True, self.peer.window))

    async def close(self) -> None:
        await self.peer.close()

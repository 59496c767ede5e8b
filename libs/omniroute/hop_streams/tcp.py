"""Session streams on plain TCP (OMNIROUTE_HOP_TRANSPORT=tcp): the same session messages as the
gRPC `Session` stream (RouterSessionIn / ExecutorSessionIn in, SessionOut back), each one a frame
of a 4-byte big-endian length and the protobuf bytes, on one TCP connection per stream.

Why: per message, grpc.aio costs 2–3× what an asyncio protocol writing length-prefixed bytes does
(`bench/README.md`, "One hop per transport"); the session protocol (ids, credit, cancel, deadline,
drain) needs nothing else from HTTP/2. The gRPC server stays (health, ListModels, MCP, the unary
RPCs, and the `Session` stream itself); its `Session` stream's headers tell a client which TCP
port serves the same sessions (`server.PORT_HEADER`), so that no client needs a second address.

Opening: the client sends one frame naming the session method (`/omniroute.v1.Router/Session`),
the server answers with an empty frame (the stream is open) or closes (wrong method). Closing:
the client half-closes (done writing); the server ends the connection once the requests on it
are done. Internal traffic is plaintext here as it is on the gRPC port (cluster network).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import grpc

from omniroute.hop_streams.frames import rpc_error
from omniroute.hop_streams.server import Answer, ServerSession
from omniroute.v1 import common_pb2

log = logging.getLogger("omniroute.hop_streams")

#: As large as the gRPC port accepts (runtime.GRPC_OPTIONS).
MAX_FRAME = 64 * 1024 * 1024
_LENGTH = struct.Struct(">I")


class FrameProtocol(asyncio.Protocol):
    """Length-prefixed frames both ways; incoming ones queued for `next_frame`, in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._frames: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self.eof = False                            # the peer finished writing (or went away)
        self.broken: ConnectionError | None = None  # the connection ended other than by the peer's EOF
        self.on_end: Callable[[], object] | None = None   # called once, at EOF or at the connection's end

    # --- asyncio.Protocol ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)   # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start, size = 0, len(buffer)
        while size - start >= 4:
            (length,) = _LENGTH.unpack_from(buffer, start)
            if length > MAX_FRAME:
                self.broken = ConnectionError(f"a frame of {length} bytes is larger than {MAX_FRAME}")
                assert self.transport is not None
                self.transport.abort()
                return
            if size - start - 4 < length:
                break
            self._frames.append(bytes(buffer[start + 4:start + 4 + length]))
            start += 4 + length
        if start:
            del buffer[:start]
            self._wake()

    def eof_received(self) -> bool:
        self._ended()
        return True   # keep our side open: what is queued still goes out

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.eof and self.broken is None:
            self.broken = ConnectionError(str(exc) if exc else "the connection was closed")
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._ended()

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # --- for the stream's code ---
    def _ended(self) -> None:
        first = not self.eof
        self.eof = True
        self._wake()
        if first and self.on_end is not None:
            self.on_end()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next_frame(self) -> bytes | None:
        """The next frame (those that arrived whole come first); None once the peer finished
        writing; ConnectionError if the connection broke instead."""
        while not self._frames:
            if self.broken is not None:
                raise self.broken
            if self.eof:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._frames.popleft()

    async def send(self, payload: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionError("the connection is closed")
        transport.write(_LENGTH.pack(len(payload)) + payload)
        if self._writable is not None:   # the peer reads slower than we write: wait for it
            await self._writable


class TcpCall:
    """The client side of one TCP session stream, with the part of a grpc.aio stream-stream
    call that `client.ClientStream` uses (initial_metadata, write, read, done_writing, cancel)."""

    def __init__(self, host: str, port: int, method: str) -> None:
        self._host, self._port, self._method = host, port, method
        self._protocol = FrameProtocol()
        self._cancelled = False

    async def initial_metadata(self) -> tuple[()]:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: self._protocol, self._host, self._port)
            await self._protocol.send(self._method.encode())
            hello = await self._protocol.next_frame()
        except OSError as exc:
            raise rpc_error(grpc.StatusCode.UNAVAILABLE, f"{self._host}:{self._port}: {exc}") from None
        if hello is None:
            raise rpc_error(grpc.StatusCode.UNIMPLEMENTED, f"{self._host}:{self._port} does not serve {self._method}")
        return ()

    def done(self) -> bool:
        return self._protocol.eof

    async def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    async def write(self, message: Any) -> None:
        try:
            await self._protocol.send(message.SerializeToString())
        except ConnectionError as exc:
            raise rpc_error(grpc.StatusCode.UNAVAILABLE, str(exc)) from None

    async def done_writing(self) -> None:
        transport = self._protocol.transport
        if transport is not None and not transport.is_closing():
            transport.write_eof()

    async def read(self) -> Any:
        try:
            frame = await self._protocol.next_frame()
        except ConnectionError as exc:
            if self._cancelled:
                raise rpc_error(grpc.StatusCode.CANCELLED, "the session stream was closed") from None
            raise rpc_error(grpc.StatusCode.UNAVAILABLE, f"the connection broke: {exc}") from None
        if frame is None:   # the server ended the stream (drained, or stopped)
            self.cancel()
            return grpc.aio.EOF
        return common_pb2.SessionOut.FromString(frame)

    def cancel(self) -> bool:
        self._cancelled = True
        if self._protocol.transport is not None:
            self._protocol.transport.abort()
        return True


class _Context:
    """What ServerSession.run needs of a gRPC servicer context: sending the stream's headers."""

    def __init__(self, protocol: FrameProtocol) -> None:
        self._protocol = protocol

    async def send_initial_metadata(self, _metadata: Any) -> None:
        await self._protocol.send(b"")   # the hello frame: the stream is open


class TcpSessionServer:
    """Serves one session method on a TCP port: each connection a `ServerSession` over the same
    answer function as the gRPC `Session` stream and the unary RPCs."""

    def __init__(self, method: str, message_type: Any, answer: Answer) -> None:
        self._method = method.encode()
        self._message_type = message_type
        self._answer = answer
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._accept, host, port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("session streams (%s) on TCP %s:%d", self._method.decode(), host, self.port)
        return self.port

    def _accept(self) -> FrameProtocol:
        protocol = FrameProtocol()
        task = asyncio.get_running_loop().create_task(self._serve(protocol))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)
        # The client half-closes only once nothing of its is in flight here (ClientStream.drain),
        # and a client that dies ends the connection: either way what still runs here is unwanted.
        protocol.on_end = task.cancel
        return protocol

    async def _serve(self, protocol: FrameProtocol) -> None:
        try:
            method = await protocol.next_frame()
            if method != self._method:
                log.warning("a session connection asked for %r here, which serves %r", method, self._method)
                return
            session = ServerSession(self._answer)
            async for out in session.run(self._requests(protocol), _Context(protocol)):  # type: ignore[arg-type]
                await protocol.send(out.SerializeToString())
        except (ConnectionError, asyncio.CancelledError):
            pass   # the client went away: ServerSession.run's finally cancelled its requests
        except Exception:
            log.exception("session connection failed")
        finally:
            if protocol.transport is not None:
                protocol.transport.close()

    async def _requests(self, protocol: FrameProtocol) -> AsyncIterator[Any]:
        parse = self._message_type.FromString
        while True:
            try:
                frame = await protocol.next_frame()
            except ConnectionError:
                return
            if frame is None:
                return
            yield parse(frame)

    async def close(self, grace_s: float | None) -> None:
        """After `server.drain_all()`: no new connections; those open end as their requests do
        (their clients were asked to leave), or are cut after `grace_s`."""
        if self._server is not None:
            self._server.close()
        if self._connections:
            await asyncio.wait(set(self._connections), timeout=grace_s)
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

"""One session stream, the client side: requests multiplexed by id, their frames queued per
request (never blocking the stream's reader), credit granted as the consumer takes frames,
deadlines, cancellation, and what a broken stream means for each request on it."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import grpc

from omniroute.hop_streams.frames import rpc_error, status_code
from omniroute.v1 import common_pb2

log = logging.getLogger("omniroute.hop_streams")

#: How long a stream may take to open (its server's headers) before the attempt counts as failed.
OPEN_TIMEOUT_S = 5.0


class NotStarted(Exception):
    """The stream broke before this request's first frame arrived: nothing of its answer reached
    the caller, so it may be sent again on another stream or replica."""


class Pending:
    """One request in flight on a stream: its frames, in order, until `end` or a failure."""

    __slots__ = (
        "consumed",
        "deadline",
        "error",
        "finished",
        "frames",
        "id",
        "started",
        "stream",
        "waiter",
        "window",
    )

    def __init__(self, request_id: int, stream: ClientStream, window: int) -> None:
        self.id = request_id
        self.stream = stream
        self.frames: deque[common_pb2.SessionEvents] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.started = False     # a frame of its answer arrived
        self.finished = False    # end, failure, or cancelled: no frame will follow
        self.error: BaseException | None = None
        self.consumed = 0
        self.window = window
        self.deadline: asyncio.TimerHandle | None = None

    def deliver(self, frame: common_pb2.SessionEvents) -> None:
        self.started = True
        self.frames.append(frame)
        if frame.end or frame.failed_code:
            self._finish()
        self._wake()

    def fail(self, error: BaseException) -> None:
        if self.finished:
            return
        self.error = error
        self._finish()
        self._wake()

    def _finish(self) -> None:
        self.finished = True
        if self.deadline is not None:
            self.deadline.cancel()
        self.stream.forget(self.id)

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def next(self) -> common_pb2.SessionEvents | None:
        """The next frame of the answer; None after its end. Raises the request's failure: an
        AioRpcError like a unary call's, or NotStarted."""
        while not self.frames:
            if self.error is not None:
                raise self.error
            if self.finished:
                return None
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        frame = self.frames.popleft()
        if frame.failed_code:
            self.error = rpc_error(status_code(frame.failed_code), frame.failed_details)
            raise self.error
        self.consumed += 1
        if self.consumed * 2 >= self.window and not self.finished:   # half the window used: grant it again
            self.stream.send(id=self.id, credit=self.consumed)
            self.consumed = 0
        return frame

    def cancel(self) -> None:
        """The caller gave up: the server cancels this request's task, nothing else."""
        if not self.finished:
            self.stream.send(id=self.id, cancel=True)
            self.fail(asyncio.CancelledError())

    def expire(self) -> None:
        if not self.finished:
            self.stream.send(id=self.id, cancel=True)
            self.fail(rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))


class ClientStream:
    """One long-lived `Session` stream. States: opening → ready → draining (the server asked, or
    the peer's address went away: no new requests; closed once idle) → closed."""

    def __init__(self, open_call: Callable[[], Any], frame_type: Any, message_type: Any,
                 address: str, on_closed: Callable[[ClientStream], None]) -> None:
        # A grpc.aio stream-stream call, or a tcp.TcpCall (the same methods, on plain TCP).
        self._open_call = open_call
        self._frame_type = frame_type
        self._message_type = message_type
        self.address = address
        self._on_closed = on_closed
        self._ids = itertools.count(1)
        self._pending: dict[int, Pending] = {}
        self._outbox: list[Any] = []
        self._outbox_ready: asyncio.Event = asyncio.Event()
        self._call: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self.ready = False
        self.draining = False
        self.closed = False

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def open(self) -> None:
        self._call = self._open_call()
        try:
            await asyncio.wait_for(self._call.initial_metadata(), OPEN_TIMEOUT_S)
        except BaseException:
            self._call.cancel()
            raise
        if self._call.done():   # refused: the call ended with its headers
            code = await self._call.code()
            raise rpc_error(code, "the session stream ended as it opened")
        self.ready = True
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._write())]

    def start(self, request: Any, options: common_pb2.SessionStart) -> Pending:
        request_id = next(self._ids)
        pending = self._pending[request_id] = Pending(request_id, self, options.window)
        self.send(id=request_id, start=request, options=options)
        if options.timeout_ms:
            pending.deadline = asyncio.get_running_loop().call_later(options.timeout_ms / 1000, pending.expire)
        return pending

    def forget(self, request_id: int) -> None:
        self._pending.pop(request_id, None)
        if self.draining and not self._pending:
            self._finish_writing()

    def send(self, **fields: Any) -> None:
        if self.closed:
            return
        self._outbox.append(self._frame_type(**fields))
        self._outbox_ready.set()

    def drain(self) -> None:
        """No new requests; the stream closes once those on it are done."""
        self.draining = True
        if not self._pending:
            self._finish_writing()

    def _finish_writing(self) -> None:
        self._outbox.append(None)   # after what is queued: done writing
        self._outbox_ready.set()

    async def _write(self) -> None:
        try:
            while True:
                await self._outbox_ready.wait()
                self._outbox_ready.clear()
                frames, self._outbox = self._outbox, []
                done = None in frames
                frames = [frame for frame in frames if frame is not None]
                if frames:
                    await self._call.write(self._message_type(frames=frames))
                if done:
                    await self._call.done_writing()
                    return
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError, grpc.aio.UsageError):
            return   # the reader sees the stream's end and fails what was on it

    async def _read(self) -> None:
        error: BaseException | None = None
        try:
            while True:
                message = await self._call.read()
                if message is grpc.aio.EOF:
                    break
                for frame in message.frames:
                    pending = self._pending.get(frame.id)
                    if pending is not None:   # else: cancelled or expired here already
                        pending.deliver(frame)
                if message.drain:
                    self.drain()
        except grpc.aio.AioRpcError as exc:
            error = exc
        except asyncio.CancelledError:
            error = rpc_error(grpc.StatusCode.CANCELLED, "the session stream was closed")
        self._broken(error)

    def _broken(self, error: BaseException | None) -> None:
        """The stream ended: a request whose answer had begun fails (the caller has part of it);
        one that had not begun may go elsewhere (NotStarted)."""
        self.ready = False
        self.closed = True
        details = (error.details() or error.code().name) if isinstance(error, grpc.aio.AioRpcError) \
            else "the stream ended"
        if self._pending:
            log.info("session stream to %s ended with %d request(s) in flight: %s",
                     self.address, len(self._pending), details)
        for pending in list(self._pending.values()):
            if pending.started:
                pending.fail(rpc_error(grpc.StatusCode.UNAVAILABLE,
                                       f"the session stream to {self.address} broke mid-answer: {details}"))
            else:
                pending.fail(NotStarted(details))
        self._pending.clear()
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        self._on_closed(self)

    async def close(self) -> None:
        if self._call is not None:
            self._call.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

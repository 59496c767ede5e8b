"""The server side of a session stream: each request its own task, through the unary handler's
own answer function; frames out in batches; credit per request; drain on shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from opentelemetry import context as otel_context

from omniroute import telemetry
from omniroute.hop_streams.frames import failed
from omniroute.v1 import common_pb2

log = logging.getLogger("omniroute.hop_streams")

#: The `Session` stream's header that names the TCP port serving the same sessions (tcp.py).
PORT_HEADER = "omniroute-session-tcp-port"

#: A service's answer to one request: the events the unary handler would send, given the
#: request and the caller's trace context. The unary handlers call the same function.
Answer = Callable[[Any, otel_context.Context], AsyncIterator[common_pb2.AnswerEvent]]

#: Every session this process serves, so that a shutdown can ask their clients to leave.
_live: set[ServerSession] = set()


async def drain_all() -> None:
    """Shutdown, before the gRPC server stops: every client is told to start nothing more here and
    to close its stream once its requests on it are done, so that `server.stop(grace)` ends as soon
    as the requests in flight end (a long-lived stream would otherwise hold it for all of grace)."""
    for session in list(_live):
        session.drain()


async def serve(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any],
                answer: Answer, tcp_port: int = 0) -> AsyncIterator[common_pb2.SessionOut]:
    """The `Session` RPC's handler (router and executor alike). `tcp_port`: where the same
    sessions are served on plain TCP (tcp.TcpSessionServer), told to the client in the headers."""
    session = ServerSession(answer)
    headers = ((PORT_HEADER, str(tcp_port)),) if tcp_port else ()
    async for out in session.run(requests, context, headers):
        yield out


class _Request:
    __slots__ = ("credit", "task", "wake")

    def __init__(self, window: int) -> None:
        self.task: asyncio.Task[None] | None = None
        self.credit = window if window > 0 else -1   # -1: the caller asked for no limit
        self.wake: asyncio.Event | None = None

    def grant(self, frames: int) -> None:
        if self.credit >= 0:
            self.credit += frames
        if self.wake is not None:
            self.wake.set()

    async def spend(self) -> None:
        """One frame's credit; waits while the caller has not consumed what it was sent."""
        while self.credit == 0:
            self.wake = self.wake or asyncio.Event()
            self.wake.clear()
            await self.wake.wait()
        if self.credit > 0:
            self.credit -= 1


class ServerSession:
    def __init__(self, answer: Answer) -> None:
        self._answer = answer
        self._out: asyncio.Queue[common_pb2.SessionEvents | None] = asyncio.Queue()
        self._requests: dict[int, _Request] = {}
        self._reading = True
        self._drain_sent = False
        self._drain_wanted = False

    def drain(self) -> None:
        self._drain_wanted = True
        self._out.put_nowait(common_pb2.SessionEvents())   # wakes the writer; id 0 is never a request

    async def run(self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any],
                  headers: tuple[tuple[str, str], ...] = ()) -> AsyncIterator[common_pb2.SessionOut]:
        # Headers now: the client knows the stream is open before it puts a request on it.
        await context.send_initial_metadata(headers)
        reader = asyncio.create_task(self._read(requests))
        _live.add(self)
        try:
            while True:
                item = await self._out.get()
                frames: list[common_pb2.SessionEvents] = []
                ended = self._take(item, frames)
                while not ended and not self._out.empty():
                    ended = self._take(self._out.get_nowait(), frames)
                drain = self._drain_wanted and not self._drain_sent
                if frames or drain:
                    self._drain_sent = self._drain_sent or drain
                    yield common_pb2.SessionOut(frames=frames, drain=drain)
                if ended:
                    return
        finally:
            _live.discard(self)
            reader.cancel()
            for request in self._requests.values():   # the stream ended: nobody waits for these
                if request.task is not None:
                    request.task.cancel()

    @staticmethod
    def _take(item: common_pb2.SessionEvents | None, frames: list[common_pb2.SessionEvents]) -> bool:
        if item is None:
            return True
        if item.id:
            frames.append(item)
        return False

    async def _read(self, requests: AsyncIterator[Any]) -> None:
        try:
            async for message in requests:
                for frame in message.frames:
                    self._on_frame(frame)
        except asyncio.CancelledError:
            raise
        except grpc.aio.AioRpcError:
            pass   # the client went away: run()'s finally cancels what it had started
        except Exception:
            log.exception("session stream: reading the client's frames failed")
        self._reading = False
        self._end_if_done()

    def _on_frame(self, frame: Any) -> None:
        kind = frame.WhichOneof("kind")
        if kind == "start":
            request = self._requests[frame.id] = _Request(frame.options.window)
            request.task = asyncio.create_task(self._run(frame.id, frame.start, frame.options, request))
        elif kind == "credit":
            known = self._requests.get(frame.id)
            if known is not None:
                known.grant(frame.credit)
        elif kind == "cancel":
            known = self._requests.get(frame.id)
            if known is not None and known.task is not None:
                known.task.cancel()

    async def _run(self, request_id: int, request: Any, options: common_pb2.SessionStart,
                   state: _Request) -> None:
        parent = telemetry.context_from_metadata(options.trace.items())
        timeout = options.timeout_ms / 1000 if options.timeout_ms else None
        try:
            async with asyncio.timeout(timeout):
                if options.whole:
                    events = [event async for event in self._answer(request, parent)]
                    self._out.put_nowait(common_pb2.SessionEvents(id=request_id, events=events, end=True))
                else:
                    async for event in self._answer(request, parent):
                        await state.spend()
                        self._out.put_nowait(common_pb2.SessionEvents(id=request_id, events=[event]))
                    self._out.put_nowait(common_pb2.SessionEvents(id=request_id, end=True))
        except TimeoutError:
            self._out.put_nowait(failed(request_id, grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))
        except asyncio.CancelledError:
            pass   # the caller cancelled it (its id is gone there), or the stream ended
        except Exception:
            # The answer functions turn their own failures into error events; this is a bug here.
            log.exception("session stream: request %d failed", request_id)
            self._out.put_nowait(failed(request_id, grpc.StatusCode.INTERNAL, "internal error"))
        finally:
            self._requests.pop(request_id, None)
            self._end_if_done()

    def _end_if_done(self) -> None:
        """The client closed its side and nothing runs any more: the stream ends, cleanly."""
        if not self._reading and not self._requests:
            self._out.put_nowait(None)

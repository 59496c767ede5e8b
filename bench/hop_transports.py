"""The transports `bench.grpc_hop` compares: for each, a server that answers every 600-byte message
with a 600-byte message, and a client whose `call()` sends one and returns the answer.

- `unary`: one grpc.aio unary call per request;
- `bidi`: one long-lived grpc.aio bidi stream, requests multiplexed by id;
- `tcp`: raw asyncio TCP, 4-byte length-prefixed frames, requests multiplexed by id (the floor of
  any Python hop);
- `http`: one HTTP/1.1 POST per request, aiohttp on both sides (keep-alive).

Messages are plain bytes (no protobuf: serialisation is not what is measured). On the multiplexed
transports a message is an 8-byte request id followed by filler, so every message is 600 bytes.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

MESSAGE_SIZE = 600  # about a chat request / answer
_PAYLOAD = b"x" * MESSAGE_SIZE
_ID = struct.Struct("!Q")
_LENGTH = struct.Struct("!I")
_FILLER = b"x" * (MESSAGE_SIZE - _ID.size)
_SERVICE = "bench.Hop"


@dataclass
class Client:
    call: Callable[[], Awaitable[bytes]]
    close: Callable[[], Awaitable[None]]


class Multiplexer:
    """Requests in flight on one connection: each waits on a future keyed by its id, which the
    connection's reader resolves when the answer with that id arrives."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]]) -> None:
        self._send = send
        self._ids = itertools.count()
        self._pending: dict[int, asyncio.Future[bytes]] = {}

    async def call(self) -> bytes:
        request_id = next(self._ids)
        answer = asyncio.get_running_loop().create_future()
        self._pending[request_id] = answer
        await self._send(_ID.pack(request_id) + _FILLER)
        return await answer

    async def read_answers(self, read: Callable[[], Awaitable[bytes]]) -> None:
        """Resolve answers until the connection ends; then fail whatever is still waiting."""
        try:
            while True:
                message = await read()
                self._pending.pop(_ID.unpack_from(message)[0]).set_result(message)
        except BaseException as error:
            for answer in self._pending.values():
                answer.set_exception(ConnectionError(f"connection ended: {error!r}"))
            self._pending.clear()
            raise


def _answer(message: bytes) -> bytes:
    """The server's answer to a multiplexed message: the same id, a full-size message."""
    return message[:_ID.size] + _FILLER


# --- gRPC: unary and bidi on one generic service (bytes in, bytes out) -------------------------

async def _grpc_server(port: int) -> None:
    import grpc

    async def unary(request: bytes, context: Any) -> bytes:
        return _PAYLOAD

    async def stream(requests: Any, context: Any) -> Any:
        async for message in requests:
            yield _answer(message)

    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE, {
        "Call": grpc.unary_unary_rpc_method_handler(unary),
        "Stream": grpc.stream_stream_rpc_method_handler(stream),
    }),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def _unary_client(port: int) -> Client:
    import grpc

    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    method = channel.unary_unary(f"/{_SERVICE}/Call")

    async def call() -> bytes:
        answer: bytes = await method(_PAYLOAD)
        return answer

    return Client(call, channel.close)


async def _bidi_client(port: int) -> Client:
    import grpc

    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stream = channel.stream_stream(f"/{_SERVICE}/Stream")()

    async def read() -> bytes:
        message = await stream.read()
        if message is grpc.aio.EOF:
            raise ConnectionError("stream ended")
        return message  # type: ignore[no-any-return]

    requests = Multiplexer(stream.write)
    reader = asyncio.create_task(requests.read_answers(read))

    async def close() -> None:
        await stream.done_writing()
        await asyncio.gather(reader, return_exceptions=True)
        await channel.close()

    return Client(requests.call, close)


# --- raw asyncio TCP, length-prefixed frames ---------------------------------------------------

async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    return await reader.readexactly(size)


def _frame(message: bytes) -> bytes:
    return _LENGTH.pack(len(message)) + message


async def _tcp_server(port: int) -> None:
    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                writer.write(_frame(_answer(await _read_frame(reader))))
        except asyncio.IncompleteReadError:
            pass  # the client closed the connection
        finally:
            writer.close()

    server = await asyncio.start_server(connection, "127.0.0.1", port)
    await server.serve_forever()


async def _tcp_client(port: int) -> Client:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)  # TCP_NODELAY is asyncio's default

    async def send(message: bytes) -> None:
        writer.write(_frame(message))
        await writer.drain()

    requests = Multiplexer(send)
    reading = asyncio.create_task(requests.read_answers(lambda: _read_frame(reader)))

    async def close() -> None:
        writer.close()
        await asyncio.gather(reading, return_exceptions=True)

    return Client(requests.call, close)


# --- HTTP/1.1 (aiohttp) -----------------------------------------------------------------------

async def _http_server(port: int) -> None:
    from aiohttp import web

    async def call(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=_PAYLOAD)

    app = web.Application()
    app.router.add_post("/call", call)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


async def _http_client(port: int) -> Client:
    import aiohttp

    session = aiohttp.ClientSession()

    async def call() -> bytes:
        async with session.post(f"http://127.0.0.1:{port}/call", data=_PAYLOAD) as response:
            return await response.read()

    return Client(call, session.close)


SERVERS: dict[str, Callable[[int], Coroutine[Any, Any, None]]] = {
    "unary": _grpc_server, "bidi": _grpc_server, "tcp": _tcp_server, "http": _http_server,
}
CLIENTS: dict[str, Callable[[int], Awaitable[Client]]] = {
    "unary": _unary_client, "bidi": _bidi_client, "tcp": _tcp_client, "http": _http_client,
}

"""A misbehaving OpenAI-compatible upstream, for the reliability suite.

The ordinary mocks (``tests/mocks/app.py``) speak HTTP through uvicorn, which always sends
well-formed responses. The faults that matter for a gateway live below that: a server that
never sends its headers, one that trickles bytes, one that cuts a frame in half. So this one is
raw asyncio on a socket, where every byte and every close is ours to choose.

The requested model picks the fault (``POST /v1/chat/completions``, body ``{"model": …}``):

==================  =================================================================
``fault-hang``      reads the request, never answers (a timeout before the headers)
``fault-stall``     200 + two stream chunks (or the JSON headers only), then silence until
                    the client closes (noted in ``released``)
``fault-truncated`` 200 + one chunk + half a frame, then a clean end of the body
``fault-badjson``   200 with a body that is not JSON (a stream: a frame of not-JSON)
``fault-slowloris`` 200 headers, then one byte every 200 ms, forever (never completes)
``fault-slowhead``  the status line, then one header byte every 200 ms, forever
``fault-close``     reads the request, closes the connection without a byte
``fault-reset``     reads the request, resets the connection (RST)
``fault-redirect``  307 to ``/followed`` on this server (a gateway must not follow it)
anything else       a good answer ("ok from faults"), streamed or not
==================  =================================================================

Every request is counted in ``FaultServer.hits`` (model → count), every accepted TCP connection
in ``FaultServer.connections`` (a refused call must not even connect), and every connection the
server still holds open is closed by ``stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections import Counter
from types import TracebackType

import orjson

FAULTS = ("fault-hang", "fault-stall", "fault-truncated", "fault-badjson", "fault-slowloris",
          "fault-slowhead", "fault-close", "fault-reset", "fault-redirect")
_TRICKLE_S = 0.2


def _chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk (streams use chunked transfer encoding, like real providers)."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _sse(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _delta(model: str, text: str, finish: str | None = None) -> dict[str, object]:
    return {"id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [{"index": 0, "delta": {"content": text} if text else {},
                         "finish_reason": finish}]}


def _completion(model: str) -> bytes:
    return orjson.dumps({
        "id": "chatcmpl-fault", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok from faults"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}})


_STREAM_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n")


def _json_head(length: int | None) -> bytes:
    size = f"content-length: {length}\r\n" if length is not None else "transfer-encoding: chunked\r\n"
    return f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{size}connection: close\r\n\r\n".encode()


class FaultServer:
    """The server in a background thread with its own event loop; ``url`` has no trailing /."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        self.hits: Counter[str] = Counter()
        self.paths: Counter[str] = Counter()
        self.connections = 0
        #: (model, time.monotonic()) when the gateway closed a stalled connection: the proof that
        #: a caller who went away cancelled the upstream call too.
        self.released: list[tuple[str, float]] = []
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"fault-upstream-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FaultServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fault upstream did not start")
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            # Handlers parked in a fault (a hang, a stall) end now, not at interpreter exit.
            handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def __enter__(self) -> FaultServer:
        return self if self._ready.is_set() else self.start()

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None,
                                   TracebackType | None]) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            self._sock.listen(256)
            self._server = await asyncio.start_server(self._handle, sock=self._sock)
            self._ready.set()
        self._loop.run_until_complete(serve())
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            path, model, stream = await _read_request(reader)
            self.hits[model] += 1
            self.paths[path] += 1
            if model == "fault-redirect":
                writer.write(f"HTTP/1.1 307 Temporary Redirect\r\nlocation: {self.url}/followed\r\n"
                             "content-length: 0\r\nconnection: close\r\n\r\n".encode())
                await writer.drain()
                return
            await _answer(model, stream, reader, writer, self.released)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # the client gave up: that is the point of most faults here
        finally:
            with contextlib.suppress(Exception):
                writer.close()


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    path = head.split(b" ", 2)[1].decode("latin-1") if head.count(b" ") >= 2 else ""
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = orjson.loads(await reader.readexactly(length)) if length else {}
    if not isinstance(body, dict):
        return path, "", False
    return path, str(body.get("model", "")), bool(body.get("stream"))


async def _answer(model: str, stream: bool, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  released: list[tuple[str, float]]) -> None:
    if model == "fault-hang":
        await asyncio.sleep(3600)
    elif model == "fault-close":
        return
    elif model == "fault-reset":
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
    elif model == "fault-slowhead":
        writer.write(b"HTTP/1.1 200 OK\r\n")
        while True:
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(_TRICKLE_S)
    elif model == "fault-slowloris":
        writer.write(_STREAM_HEAD if stream else _json_head(None))
        while True:  # bytes keep coming, so no read ever times out, but nothing ever completes
            writer.write(_chunk(b"d" if stream else b" "))
            await writer.drain()
            await asyncio.sleep(_TRICKLE_S)
    elif model == "fault-stall":
        if stream:
            writer.write(_STREAM_HEAD + _chunk(_sse(_delta(model, "one")))
                         + _chunk(_sse(_delta(model, " two"))))
        else:
            writer.write(_json_head(4096))
        await writer.drain()
        await reader.read()   # nothing more comes from the client: this returns when it closes
        released.append((model, time.monotonic()))
    elif model == "fault-truncated":
        if stream:
            writer.write(_STREAM_HEAD + _chunk(_sse(_delta(model, "one"))) + _chunk(b'data: {"id":"chatc')
                         + b"0\r\n\r\n")
        else:
            body = _completion(model)
            writer.write(_json_head(None) + _chunk(body[: len(body) // 2]) + b"0\r\n\r\n")
    elif model == "fault-badjson":
        if stream:
            writer.write(_STREAM_HEAD + _chunk(b"data: {this is not json}\n\n") + b"0\r\n\r\n")
        else:
            body = b"<html>502 Bad Gateway</html>"
            writer.write(_json_head(len(body)) + body)
    else:
        if stream:
            frames = (_sse(_delta(model, "ok")) + _sse(_delta(model, " from faults", "stop"))
                      + b"data: [DONE]\n\n")
            writer.write(_STREAM_HEAD + _chunk(frames) + b"0\r\n\r\n")
        else:
            body = _completion(model)
            writer.write(_json_head(len(body)) + body)
    await writer.drain()


def start_fault_server(port: int = 0) -> FaultServer:
    return FaultServer(port=port).start()

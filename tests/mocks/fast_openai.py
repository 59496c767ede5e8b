"""A load-test upstream that is never the bottleneck: OpenAI chat completions on raw asyncio.

    python -m tests.mocks.fast_openai --port 9998 [--host 127.0.0.1] [--latency-ms 0]
        [--tokens 100] [--tps 0] [--workers 1]

(or env ``FAST_MOCK_LATENCY_MS`` / ``FAST_MOCK_TOKENS`` / ``FAST_MOCK_TPS`` / ``FAST_MOCK_WORKERS``.)

Any ``POST`` answers a chat completion; ``"stream": true`` in the body (the only thing parsed,
by a byte search) switches to SSE: a role chunk, ``--tokens`` content chunks of one token each,
a finish chunk, a usage chunk and ``data: [DONE]``. Any ``GET`` answers the model list.
``--latency-ms`` delays the first byte; ``--tps`` paces the stream's tokens (0 = all at once, in
one write). Responses are built once at start-up; HTTP/1.1 keep-alive, no recorder, no
validation. httptools parses, uvloop runs the loop; ``--workers N`` forks N processes sharing the
port (SO_REUSEPORT).

Measured alone on this 2-core machine (2026-11-25, shared with other work; wrk 4.1.0 on the same two
cores, 5 s runs, one worker, uvloop + httptools):

* non-streaming chat, ``-t2 -c64``:                       ~117,000 req/s, p50 0.5 ms, p99 8.5 ms
* streaming chat, 100 tokens, ``--tps 0``, ``-t2 -c64``:   ~90,000 req/s, p50 0.6 ms, p99 12.6 ms
* non-streaming, ``--latency-ms 20``, ``-c256``:           ~11,800 req/s, p50 21.1 ms, p99 27 ms
* streaming, 100 tokens at ``--tps 1000``, ``-t1 -c64``:  612 req/s (= 64 / 0.1 s), p50 103 ms,
  p99 110 ms, about 0.2 CPU-seconds per second (64,000 chunk writes/s)

i.e. two orders of magnitude above the rates the gateway benchmarks aim at (issue 5): the mock is
not the bottleneck. ``--workers 2``: ~148,000 req/s non-streaming (same wrk settings).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, cast

import httptools
import orjson

MODEL = "mock-fast"
PROMPT_TOKENS = 10


@dataclass(frozen=True)
class FastConfig:
    latency_ms: float = 0.0
    tokens: int = 100
    tps: float = 0.0


def _head(status: str, content_type: str, length: int | None) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"content-type: {content_type}", "x-request-id: req_fast"]
    lines.append(f"content-length: {length}" if length is not None else "transfer-encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunked(frame: bytes) -> bytes:
    return f"{len(frame):x}\r\n".encode() + frame + b"\r\n"


class Responses:
    """Every byte the server sends, built once."""

    def __init__(self, cfg: FastConfig) -> None:
        usage = {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": cfg.tokens,
            "total_tokens": PROMPT_TOKENS + cfg.tokens,
        }
        base: dict[str, Any] = {"id": "chatcmpl-fast", "created": 1_700_000_000, "model": MODEL}
        completion = {
            **base,
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": " tok" * cfg.tokens, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
        body = orjson.dumps(completion)
        self.completion = _head("200 OK", "application/json", len(body)) + body
        models = orjson.dumps(
            {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "mock"}]}
        )
        self.models = _head("200 OK", "application/json", len(models)) + models
        bad = b'{"error":{"message":"bad request","type":"invalid_request_error","param":null,"code":null}}'
        self.bad_request = _head("400 Bad Request", "application/json", len(bad)) + bad

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            obj = {
                **base,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                **extra,
            }
            return _chunked(b"data: " + orjson.dumps(obj) + b"\n\n")

        self.stream_head = _head("200 OK", "text/event-stream; charset=utf-8", None)
        first = chunk({"role": "assistant", "content": "", "refusal": None})
        tokens = [chunk({"content": " tok"}) for _ in range(cfg.tokens)]
        usage_frame = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
        tail = chunk({}, "stop") + _chunked(b"data: " + orjson.dumps(usage_frame) + b"\n\n")
        tail += _chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n"
        #: the stream as the writes to make: the head with the role chunk, one per token, the tail
        self.stream_parts = [self.stream_head + first, *tokens, tail]
        self.stream_all = b"".join(self.stream_parts)


class FastProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection; requests are answered in order."""

    def __init__(self, cfg: FastConfig, res: Responses) -> None:
        self.cfg = cfg
        self.res = res
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.body = bytearray()
        self.pending: deque[tuple[bytes, bool]] = deque()  # (kind, keep-alive)
        self.busy = False

    # -- asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._write(self.res.bad_request)
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    # -- httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        if method == b"POST":
            streaming = b'"stream":true' in self.body or b'"stream": true' in self.body
            kind = b"stream" if streaming else b"chat"
        else:
            kind = b"models"
        self.body.clear()
        self.pending.append((kind, self.parser.should_keep_alive()))
        self._next()

    # -- answering
    def _next(self) -> None:
        if self.busy or not self.pending:
            return
        self.busy = True
        kind, keep = self.pending.popleft()
        if self.cfg.latency_ms > 0 and kind != b"models":
            self.loop.call_later(self.cfg.latency_ms / 1000, self._answer, kind, keep)
        else:
            self._answer(kind, keep)

    def _answer(self, kind: bytes, keep: bool) -> None:
        if kind == b"stream" and self.cfg.tps > 0:
            self._tick(0, self.loop.time(), keep)
            return
        data = {b"chat": self.res.completion, b"stream": self.res.stream_all}.get(kind, self.res.models)
        self._write(data)
        self._done(keep)

    def _tick(self, index: int, start: float, keep: bool) -> None:
        parts = self.res.stream_parts
        self._write(parts[index])
        if index + 1 < len(parts) and self.transport is not None:
            # the head and the role chunk go out at once; token i at start + i/tps (no drift)
            self.loop.call_at(start + (index + 1) / self.cfg.tps, self._tick, index + 1, start, keep)
        else:
            self._done(keep)

    def _done(self, keep: bool) -> None:
        self.busy = False
        if not keep:
            self._close()
        else:
            self._next()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _listen(host: str, port: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


async def serve(sock: socket.socket, cfg: FastConfig, *, handle_signals: bool = False) -> None:
    """Serve on ``sock`` until cancelled (or, with ``handle_signals``, until SIGTERM/SIGINT)."""
    loop = asyncio.get_running_loop()
    res = Responses(cfg)
    server = await loop.create_server(lambda: FastProtocol(cfg, res), sock=sock, backlog=4096)
    stop = asyncio.Event()
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


class FastServer:
    """The fast mock in a background thread (for tests); ``url`` is ``http://host:port``."""

    def __init__(self, cfg: FastConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.cfg = cfg
        self._sock = _listen(host, port, reuse_port=False)
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, name=f"fast-mock-{self.port}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._task = self._loop.create_task(serve(self._sock, self.cfg))
        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(self._task)

    def stop(self) -> None:
        if self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> FastServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_fast_server(cfg: FastConfig | None = None, port: int = 0, host: str = "127.0.0.1") -> FastServer:
    """Start the fast mock in a background thread; it listens once this returns."""
    return FastServer(cfg or FastConfig(), host, port)


def run(host: str, port: int, cfg: FastConfig, workers: int = 1) -> None:
    """Serve until killed; with ``workers`` > 1, fork that many processes sharing the port."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a project dependency
        uvloop = None  # type: ignore[assignment]
    children: list[int] = []
    for _ in range(max(1, workers) - 1):
        pid = os.fork()
        if pid == 0:
            children = []
            break
        children.append(pid)
    sock = _listen(host, port, reuse_port=workers > 1)
    try:
        if uvloop is not None:
            uvloop.run(serve(sock, cfg, handle_signals=True))
        else:
            asyncio.run(serve(sock, cfg, handle_signals=True))
    except KeyboardInterrupt:
        pass
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def main(argv: list[str] | None = None) -> None:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="python -m tests.mocks.fast_openai", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9998)
    parser.add_argument("--latency-ms", type=float, default=float(env("FAST_MOCK_LATENCY_MS", "0")))
    parser.add_argument("--tokens", type=int, default=int(env("FAST_MOCK_TOKENS", "100")))
    parser.add_argument("--tps", type=float, default=float(env("FAST_MOCK_TPS", "0")))
    parser.add_argument("--workers", type=int, default=int(env("FAST_MOCK_WORKERS", "1")))
    args = parser.parse_args(argv)
    cfg = FastConfig(latency_ms=args.latency_ms, tokens=args.tokens, tps=args.tps)
    print(f"fast openai mock on http://{args.host}:{args.port} {cfg} workers={args.workers}", flush=True)
    run(args.host, args.port, cfg, args.workers)


if __name__ == "__main__":
    main()

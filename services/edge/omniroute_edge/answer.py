"""Turning the router's event stream into the caller's HTTP answer, in the caller's format.

Chunks already in the caller's format are written as they come (passthrough); canonical chunks
go through the format's StreamEncoder. Nothing is buffered: each event becomes one frame."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import orjson
from starlette.responses import Response, StreamingResponse

from omniroute import telemetry
from omniroute.answers import CHUNK_KINDS, chunks_of, internal_error
from omniroute.hop_streams.stubs import RouterStreams
from omniroute.v1 import common_pb2, router_pb2, router_pb2_grpc
from omniroute_edge import errors, model_names
from omniroute_edge.client_formats import ClientFormat

log = logging.getLogger("omniroute.edge")


async def answer(router: router_pb2_grpc.RouterStub | RouterStreams, fmt: ClientFormat, call: router_pb2.ChatRequest,
                 headers: dict[str, str], encoder_args: dict[str, Any], *, progress_interval_s: float) -> Response:
    """Call the router and answer: a JSON response, an SSE/NDJSON stream, or an error.
    `progress_interval_s`: between SSE progress comments, when the caller asked for them."""
    if not call.stream:
        return await _whole(router, fmt, call, headers)
    rpc = router.Chat(call, metadata=telemetry.grpc_metadata())
    events = rpc.__aiter__()
    if headers.get("x-omniroute-progress") == "enabled" and not fmt.ndjson:
        # The caller asked for progress: the stream opens now, and SSE comment lines report
        # progress until the answer starts (every SSE client ignores comments).
        return StreamingResponse(_stream_with_progress(rpc, events, fmt, encoder_args, progress_interval_s),
                                 media_type=fmt.stream_media_type,
                                 headers={**headers, "cache-control": "no-cache", "x-accel-buffering": "no"})
    try:
        event = await _next(events)
    except grpc.aio.AioRpcError as exc:
        return _router_failure(fmt, exc, headers)
    if event is not None and event.WhichOneof("kind") == "start":
        headers.update(event.start.headers)
        return StreamingResponse(_stream(rpc, events, fmt, encoder_args), media_type=fmt.stream_media_type,
                                 headers={**headers, "cache-control": "no-cache", "x-accel-buffering": "no"})
    rpc.cancel()
    return _not_started(fmt, event, headers)


async def _whole(router: router_pb2_grpc.RouterStub | RouterStreams, fmt: ClientFormat, call: router_pb2.ChatRequest,
                 headers: dict[str, str]) -> Response:
    """A non-streaming answer: every event in one gRPC message."""
    try:
        whole = await router.ChatWhole(call, metadata=telemetry.grpc_metadata())
    except grpc.aio.AioRpcError as exc:
        return _router_failure(fmt, exc, headers)
    events = iter(whole.events)
    event = next(events, None)
    if event is not None and event.WhichOneof("kind") == "start":
        headers.update(event.start.headers)
        event = next(events, None)
    if event is None or event.WhichOneof("kind") != "response":
        return _not_started(fmt, event, headers)
    body = event.response
    # Streams are never cached, so only a whole answer says whether it came from the cache.
    headers.setdefault("x-omniroute-cache", "MISS")
    if event.format != fmt.proto:
        canonical = orjson.loads(body)
        canonical["model"] = call.model  # the name the client asked for, as streams say (model_names)
        body = orjson.dumps(fmt.module.canonical_to_response(canonical))
    else:
        body = model_names.renamed(body, call.model)
    return Response(body, media_type="application/json", headers=headers)


def _not_started(fmt: ClientFormat, event: common_pb2.AnswerEvent | None, headers: dict[str, str]) -> Response:
    """The answer ended, or failed, before its first chunk or its response."""
    if event is None:
        return errors.error_response(fmt, 502, "The answer ended before it started.",
                                     type_="server_error", code="empty_answer", headers=headers)
    kind = event.WhichOneof("kind")
    if kind == "error":
        return errors.from_proto(fmt, event.error, headers)
    return errors.error_response(fmt, 502, f"Unexpected answer event {kind!r}.", type_="server_error",
                                 headers=headers)


async def _next(events: AsyncIterator[common_pb2.AnswerEvent]) -> common_pb2.AnswerEvent | None:
    try:
        return await events.__anext__()
    except StopAsyncIteration:
        return None


def _router_failure(fmt: ClientFormat, exc: grpc.aio.AioRpcError, headers: dict[str, str]) -> Response:
    log.warning("router call failed: %s %s", exc.code().name, exc.details())
    return errors.from_grpc(fmt, exc, headers)


async def _stream_with_progress(rpc: Any, events: AsyncIterator[common_pb2.AnswerEvent], fmt: ClientFormat,
                                encoder_args: dict[str, Any], interval_s: float) -> AsyncIterator[bytes]:
    """Progress comments while waiting for the answer to start, then the answer itself. An error
    before the start can no longer change the HTTP status, so it ends the stream as an error
    event in the caller's format."""
    started = time.monotonic()
    first = asyncio.ensure_future(_next(events))
    failed: common_pb2.Error | None = None
    try:
        while not (await asyncio.wait({first}, timeout=interval_s))[0]:
            elapsed_ms = round((time.monotonic() - started) * 1000)
            yield b": progress " + orjson.dumps({"elapsed_ms": elapsed_ms}) + b"\n\n"
        event = first.result()
    except grpc.aio.AioRpcError as exc:
        log.warning("router call failed: %s %s", exc.code().name, exc.details())
        event, failed = None, errors.router_error(exc)
    finally:
        if not first.done():
            first.cancel()  # the caller went away while waiting
            rpc.cancel()
    if event is None or event.WhichOneof("kind") != "start":
        error = event.error if event is not None and event.WhichOneof("kind") == "error" else failed or \
            common_pb2.Error(status=502, type="server_error", code="empty_answer",
                             message="The answer ended before it started.")
        for frame in _error_frames(fmt, None, error, encoder_args):
            yield frame
        rpc.cancel()
        return
    async for frame in _stream(rpc, events, fmt, encoder_args):
        yield frame


async def _stream(rpc: Any, events: AsyncIterator[common_pb2.AnswerEvent], fmt: ClientFormat,
                  encoder_args: dict[str, Any]) -> AsyncIterator[bytes]:
    encoder = None
    model = str(encoder_args.get("model") or "")
    try:
        async for event in events:
            kind = event.WhichOneof("kind")
            if kind in CHUNK_KINDS:
                chunks = chunks_of(event)
                if event.format == fmt.proto:
                    yield b"".join(fmt.frame(chunk.event, model_names.renamed(chunk.data, model))
                                   for chunk in chunks)
                    continue
                if encoder is None:
                    encoder = fmt.module.StreamEncoder(**encoder_args)
                yield b"".join(fmt.frame(name, orjson.dumps(data)) for chunk in chunks
                               for name, data in encoder.encode(orjson.loads(chunk.data)))
            elif kind == "error":
                for frame in _error_frames(fmt, encoder, event.error, encoder_args):
                    yield frame
                return
        if encoder is not None:
            for name, data in encoder.finish():
                yield fmt.frame(name, orjson.dumps(data))
        if fmt.done_frame:
            yield fmt.done_frame
    except grpc.aio.AioRpcError as exc:
        log.warning("router stream failed mid-answer: %s %s", exc.code().name, exc.details())
        for frame in _error_frames(fmt, encoder, errors.router_error(exc, mid_stream=True), encoder_args):
            yield frame
    except Exception:
        # A bug while encoding the answer: the stream ends with an internal_error event in the
        # caller's format (the status was sent long ago), and the traceback is logged here.
        log.exception("request %s: the answer stream failed on an internal error",
                      encoder_args.get("request_id"))
        for frame in _error_frames(fmt, None, internal_error(), encoder_args):
            yield frame
    finally:
        rpc.cancel()  # a caller that went away cancels the upstream call too


def _error_frames(fmt: ClientFormat, encoder: Any, error: common_pb2.Error,
                  encoder_args: dict[str, Any]) -> list[bytes]:
    """The format's own mid-stream error event (Anthropic `event: error`, Responses `error`,
    an OpenAI/Gemini error object, an Ollama error line). A passthrough stream has no encoder
    yet: a fresh one knows the shape."""
    encoder = encoder or fmt.module.StreamEncoder(**encoder_args)
    return [fmt.frame(name, orjson.dumps(data))
            for name, data in encoder.error(error.status, error.message, error.type or "api_error")]

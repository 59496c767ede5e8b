"""The Executor gRPC service: one upstream call per Execute, streamed back event by event."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import orjson

from omniroute import ssrf, telemetry
from omniroute.answers import internal_error
from omniroute.formats import FormatError
from omniroute.formats.canonical import Usage, ext
from omniroute.formats.errors import UpstreamStreamError
from omniroute.formats.framing import NDJSONParser, SSEParser
from omniroute.limits import headroom
from omniroute.v1 import common_pb2, executor_pb2, executor_pb2_grpc
from omniroute_executor import operations, upstream, upstream_errors
from omniroute_executor.clients import HttpClients
from omniroute_executor.families.base import Family, Json, with_query_key

log = logging.getLogger("omniroute.executor")
_tracer = telemetry.tracer("omniroute.executor")
_MAX_ERROR_BODY = 65536


def _error(error: common_pb2.Error) -> common_pb2.AnswerEvent:
    return common_pb2.AnswerEvent(error=error)


class ExecutorServicer(executor_pb2_grpc.ExecutorServicer):
    def __init__(self, families: dict[str, Family], http: httpx.AsyncClient | HttpClients,
                 default_timeout_s: float, direct: upstream.DirectClient | None = None) -> None:
        self._families = families
        # One pooled client per distinct outbound proxy (and the direct one, for operations).
        self._clients = http if isinstance(http, HttpClients) else HttpClients(http, default_timeout_s)
        self._direct = direct or upstream.DirectClient()  # direct chat calls (upstream.py says why)
        self._default_timeout_s = default_timeout_s
        self._allow_private = ssrf.private_allowed()

    async def Execute(self, request: executor_pb2.ExecuteRequest,
                      context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[common_pb2.AnswerEvent]:
        parent = telemetry.context_from_metadata(context.invocation_metadata())
        with telemetry.call_span(_tracer, "executor.execute", parent) as span:
            span.set_attribute("omniroute.request_id", request.request_id)
            span.set_attribute("omniroute.provider", request.target.provider_id)
            try:
                if request.operation != common_pb2.OPERATION_CHAT:
                    answer = operations.run(self._clients, request, self._default_timeout_s, self._chat)
                else:
                    answer = self._chat(request)
                async for event in answer:
                    yield event
            except Exception:
                # A bug, not the upstream failing: 500 internal_error (also mid-stream), which the
                # router neither retries elsewhere nor blames on the connection; logged here, once.
                log.exception("request %s failed on an internal error", request.request_id)
                yield _error(internal_error())

    async def ExecuteWhole(self, request: executor_pb2.ExecuteRequest,
                           context: grpc.aio.ServicerContext[Any, Any]) -> common_pb2.AnswerEvents:
        """A non-streaming answer's events in one message (one gRPC round trip)."""
        return common_pb2.AnswerEvents(events=[event async for event in self.Execute(request, context)])

    async def _chat(self, request: executor_pb2.ExecuteRequest) -> AsyncIterator[common_pb2.AnswerEvent]:
        family = self._families.get(request.target.family)
        if family is None:
            yield _error(common_pb2.Error(
                status=500, type="server_error", code="no_executor",
                message=f"this executor does not serve the {request.target.family!r} family"))
            return
        try:
            body, passthrough, client_wants_usage = _provider_body(family, request)
        except (orjson.JSONDecodeError, ValueError) as exc:
            yield _error(common_pb2.Error(status=400, type="invalid_request_error",
                                          code="invalid_body", message=str(exc)))
            return
        async for event in self._call(family, request, body, passthrough, client_wants_usage):
            yield event

    async def _call(self, family: Family, request: executor_pb2.ExecuteRequest, body: Json,
                    passthrough: bool, client_wants_usage: bool) -> AsyncIterator[common_pb2.AnswerEvent]:
        target = request.target
        url, headers = family.prepare(target, request.stream, body)
        if passthrough:  # the caller's own body: the headers that describe it go with it
            headers.update({name: request.caller_headers[name] for name in family.caller_headers
                            if name in request.caller_headers})
        url = with_query_key(target, url)
        # The config spec refuses such base URLs already; this also covers rows written around
        # it (an older release, a restore) and URLs a family builds from the request.
        refused = ssrf.refusal(url, allow_private=self._allow_private)
        if refused:
            yield _error(common_pb2.Error(status=502, type="server_error", code="upstream_address_refused",
                                          message=f"the upstream address is refused: {refused}",
                                          retryable=True))
            return
        # The read timeout bounds each socket read, so an upstream that trickles a byte now and
        # then never trips it. `limit_s` also bounds, as a whole: the wait for the headers, a
        # whole (non-streamed) body, and the wait for each complete stream event.
        limit_s = target.timeout_s or self._default_timeout_s
        out_format = family.native_format if passthrough else common_pb2.OPENAI_CHAT
        try:
            async with asyncio.timeout(limit_s):
                answer = await upstream.post(self._direct, self._clients, target.proxy_url, url,
                                             orjson.dumps(body), headers, limit_s)
        except upstream.Unreachable as exc:
            yield _error(exc.error)
            return
        except TimeoutError:
            yield _error(_too_slow(limit_s, "answer"))
            return
        try:
            if answer.status >= 400:
                async with asyncio.timeout(limit_s):
                    raw = await _read_bounded(answer, _MAX_ERROR_BODY)
                error_type, message = family.module.parse_error(answer.status, raw)
                error = upstream_errors.classify_status(
                    answer.status, error_type, message, answer.header_map(), raw)
                # The provider's rate-limit headers, for the router to learn headroom from.
                error.headers.update(headroom.pick(answer.headers))
                yield _error(error)
                return
            yield common_pb2.AnswerEvent(start=common_pb2.ResponseStart(
                provider=target.provider_id, connection=target.connection, model=target.model,
                headers=headroom.pick(answer.headers)))
            if request.stream:
                stream = _relay_stream(family, answer, out_format, passthrough, client_wants_usage,
                                       limit_s)
            else:
                stream = _relay_response(family, answer, out_format, passthrough, limit_s)
            async for event in stream:
                yield event
        except upstream.Unreachable as exc:
            yield _error(exc.error)
        except TimeoutError:
            yield _error(_too_slow(limit_s, "event" if request.stream else "body"))
        finally:
            await answer.close()


def _provider_body(family: Family, request: executor_pb2.ExecuteRequest) -> tuple[Json, bool, bool]:
    """(provider body, passthrough?, did the caller ask for usage in the stream?).

    Passthrough: the caller's own body goes upstream untouched but for the model name, so
    that fields OmniRoute does not know survive."""
    native_format = request.native_format or common_pb2.OPENAI_CHAT
    if native_format == family.native_format:
        body = orjson.loads(request.native_body or request.body)
        if not isinstance(body, dict):
            raise ValueError("the request body is not a JSON object")
        wants_usage = family.caller_wants_usage(body)  # before prepare() asks for it anyway
        family.put_model(body, request.target.model)
        return body, True, wants_usage
    canonical = orjson.loads(request.body)
    if log.isEnabledFor(logging.DEBUG):
        _log_dropped_fields(family, canonical)
    return family.module.canonical_to_request(canonical, request.target.model), False, True


def _log_dropped_fields(family: Family, canonical: Json) -> None:
    """The caller's untranslated top-level fields (x_omniroute.native_fields) reach only an
    upstream of the caller's own format; any other drops them, and says which."""
    carried = ext(canonical).get("native_fields")
    if isinstance(carried, dict) and carried.get("format") != family.module.FORMAT \
            and isinstance(carried.get("fields"), dict) and carried["fields"]:
        log.debug("not sent to the %s upstream (only %s upstreams take them): %s", family.name,
                  carried.get("format"), sorted(carried["fields"]))


def _too_slow(limit_s: float, what: str) -> common_pb2.Error:
    return common_pb2.Error(status=504, type="upstream_error", code="upstream_timeout", retryable=True,
                            message=f"the upstream provider sent no complete {what} within {limit_s:g}s")


async def _read_bounded(answer: upstream.UpstreamAnswer, limit: int) -> bytes:
    data = bytearray()
    async for piece in answer.pieces():
        data += piece
        if len(data) >= limit:
            break
    return bytes(data[:limit])


def _usage_proto(usage: object) -> common_pb2.Usage | None:
    """Canonical (OpenAI-shaped) usage JSON → the proto accounting reads."""
    if not isinstance(usage, dict):
        return None
    counts = Usage.from_openai(usage)
    return common_pb2.Usage(input_tokens=counts.prompt, output_tokens=counts.completion,
                            cached_tokens=counts.cached, reasoning_tokens=counts.reasoning)


def _stream_error(exc: UpstreamStreamError) -> common_pb2.AnswerEvent:
    return _error(common_pb2.Error(status=exc.status, type=exc.type, code="upstream_stream_error",
                                   message=exc.message, retryable=False))


async def _relay_response(family: Family, answer: upstream.UpstreamAnswer, out_format: int,
                          passthrough: bool, limit_s: float) -> AsyncIterator[common_pb2.AnswerEvent]:
    async with asyncio.timeout(limit_s):
        raw = await answer.read()
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        yield _error(upstream_errors.bad_stream("the upstream answer is not valid JSON"))
        return
    try:
        if not isinstance(parsed, dict):
            raise FormatError("the upstream answer is not a JSON object")
        # Translated even in passthrough: the canonical usage is what accounting reads.
        canonical = family.module.response_to_canonical(parsed)
    except FormatError as exc:
        yield _error(upstream_errors.bad_stream(exc.message))
        return
    body = raw if passthrough else orjson.dumps(canonical)
    yield common_pb2.AnswerEvent(response=body, format=out_format)  # type: ignore[arg-type]
    usage = _usage_proto(canonical.get("usage"))
    if usage is not None:
        yield common_pb2.AnswerEvent(usage=usage)


async def _piece_batches(answer: upstream.UpstreamAnswer, idle_s: float,
                         progressed: list[bool]) -> AsyncIterator[list[bytes]]:
    """The body's bytes, as lists of the pieces that are ready together.

    A reader task pulls pieces into a small bounded queue (so TCP backpressure still reaches the
    upstream); each batch is everything queued at the moment it is taken, so nothing waits for
    a later piece, yet a burst (many tokens in one read) becomes one batch, not a hundred.
    Raises TimeoutError when `idle_s` pass without a complete event: the caller sets
    `progressed[0]` when a batch completed one, and only then does the clock restart — when the
    next batch is awaited, so a slow client downstream never counts against the upstream."""
    queue: asyncio.Queue[bytes | Exception | None] = asyncio.Queue(maxsize=256)

    async def read() -> None:
        try:
            async for piece in answer.pieces():
                await queue.put(piece)
            await queue.put(None)
        except Exception as exc:  # handed to the consumer, which raises it in order
            await queue.put(exc)

    reader = asyncio.create_task(read())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + idle_s
    try:
        while True:
            if progressed[0]:
                deadline, progressed[0] = loop.time() + idle_s, False
            async with asyncio.timeout_at(deadline):
                item = await queue.get()
            batch: list[bytes] = []
            while isinstance(item, bytes):
                batch.append(item)
                if queue.empty():
                    break
                item = queue.get_nowait()
            if batch:
                yield batch
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def _frame_groups(family: Family, answer: upstream.UpstreamAnswer,
                        idle_s: float) -> AsyncIterator[list[tuple[str, str]]]:
    """(event name, data) of the upstream events completed by each read, SSE or NDJSON: the
    events that arrived together travel on together, and none waits for a later read.
    Raises TimeoutError when `idle_s` pass without a complete event (a stalled stream)."""
    progressed = [False]
    if family.framing == "ndjson":
        lines = NDJSONParser()
        async for pieces in _piece_batches(answer, idle_s, progressed):
            if group := [("", line.decode("utf-8", errors="replace")) for line in lines.feed(b"".join(pieces))]:
                progressed[0] = True
                yield group
        if tail := [("", line.decode("utf-8", errors="replace")) for line in lines.flush()]:
            yield tail
        return
    parser = SSEParser()
    async for pieces in _piece_batches(answer, idle_s, progressed):
        if frames := [(frame.event, frame.data) for frame in parser.feed(b"".join(pieces))]:
            progressed[0] = True
            yield frames
    if frames := [(frame.event, frame.data) for frame in parser.flush()]:
        yield frames


async def _relay_stream(family: Family, answer: upstream.UpstreamAnswer, out_format: int, passthrough: bool,
                        client_wants_usage: bool, idle_s: float) -> AsyncIterator[common_pb2.AnswerEvent]:
    """Relay upstream events as soon as they are parsed: nothing is held back. Events that
    arrived in one read go on as one message (ChunkBatch), which keeps per-token overhead low.

    The family's decoder reads every event, also in passthrough: it finds the usage, the
    provider's mid-stream error and the end of the stream whatever the caller's format."""
    decoder = family.module.StreamDecoder()
    usage: common_pb2.Usage | None = None
    ended = False
    groups = _frame_groups(family, answer, idle_s)
    while True:
        try:
            group = await anext(groups)
        except StopAsyncIteration:
            break
        except TimeoutError:
            yield _error(_too_slow(idle_s, "stream event"))
            return
        out: list[common_pb2.Chunk] = []
        for name, text in group:
            if family.end_marker and text == family.end_marker:
                ended = True
                continue
            try:
                data = orjson.loads(text)
            except orjson.JSONDecodeError:
                if out:
                    yield from_chunks(out, out_format)
                yield _error(upstream_errors.bad_stream("the upstream stream sent invalid JSON"))
                return
            if not isinstance(data, dict):
                continue
            try:
                chunks = decoder.feed(name, data)
            except UpstreamStreamError as exc:
                if out:
                    yield from_chunks(out, out_format)
                yield _stream_error(exc)
                return
            ended = ended or family.ends_stream(name, data)
            usage = _last_usage(chunks) or usage
            if not passthrough:
                out.extend(common_pb2.Chunk(data=orjson.dumps(chunk)) for chunk in chunks)
            elif client_wants_usage or family.accounting_only is None or not family.accounting_only(data):
                out.append(common_pb2.Chunk(event=name, data=text.encode()))
        if out:
            yield from_chunks(out, out_format)
    tail = decoder.finish()
    usage = _last_usage(tail) or usage
    if not ended:
        yield _error(upstream_errors.bad_stream("the upstream stream ended before it was complete"))
        return
    if not passthrough and tail:
        yield from_chunks([common_pb2.Chunk(data=orjson.dumps(chunk)) for chunk in tail], out_format)
    if usage is not None:
        yield common_pb2.AnswerEvent(usage=usage)


def from_chunks(chunks: list[common_pb2.Chunk], out_format: int) -> common_pb2.AnswerEvent:
    """One chunk as `chunk`, several as a `chunks` batch."""
    if len(chunks) == 1:
        return common_pb2.AnswerEvent(chunk=chunks[0], format=out_format)  # type: ignore[arg-type]
    return common_pb2.AnswerEvent(chunks=common_pb2.ChunkBatch(items=chunks),
                                  format=out_format)  # type: ignore[arg-type]


def _last_usage(chunks: list[Json]) -> common_pb2.Usage | None:
    usage = None
    for chunk in chunks:
        usage = _usage_proto(chunk.get("usage")) or usage
    return usage

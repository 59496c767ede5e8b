"""The Executor gRPC service: one upstream call per Execute, streamed back event by event."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import orjson
from omniroute import telemetry
from omniroute.formats import FormatError
from omniroute.formats.canonical import Usage
from omniroute.formats.errors import UpstreamStreamError
from omniroute.formats.framing import NDJSONParser, SSEParser
from omniroute.v1 import common_pb2, executor_pb2, executor_pb2_grpc

from omniroute_executor import upstream_errors
from omniroute_executor.families.base import Family, Json

log = logging.getLogger("omniroute.executor")
_tracer = telemetry.tracer("omniroute.executor")
_MAX_ERROR_BODY = 65536


def _error(error: common_pb2.Error) -> common_pb2.AnswerEvent:
    return common_pb2.AnswerEvent(error=error)


class ExecutorServicer(executor_pb2_grpc.ExecutorServicer):
    def __init__(self, families: dict[str, Family], http: httpx.AsyncClient,
                 default_timeout_s: float) -> None:
        self._families = families
        self._http = http
        self._default_timeout_s = default_timeout_s

    async def Execute(self, request: executor_pb2.ExecuteRequest,
                      context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[common_pb2.AnswerEvent]:
        parent = telemetry.context_from_metadata(context.invocation_metadata())
        with _tracer.start_as_current_span("executor.execute", context=parent) as span:
            span.set_attribute("omniroute.request_id", request.request_id)
            span.set_attribute("omniroute.provider", request.target.provider_id)
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
        timeout = httpx.Timeout(target.timeout_s or self._default_timeout_s, connect=10.0)
        out_format = family.native_format if passthrough else common_pb2.OPENAI_CHAT
        try:
            upstream = await self._http.send(
                self._http.build_request("POST", url, content=orjson.dumps(body), headers=headers,
                                         timeout=timeout),
                stream=True)
        except httpx.HTTPError as exc:
            yield _error(upstream_errors.transport_error(exc))
            return
        try:
            if upstream.status_code >= 400:
                raw = await _read_bounded(upstream, _MAX_ERROR_BODY)
                error_type, message = family.module.parse_error(upstream.status_code, raw)
                yield _error(upstream_errors.classify_status(
                    upstream.status_code, error_type, message, upstream.headers, raw))
                return
            yield common_pb2.AnswerEvent(start=common_pb2.ResponseStart(
                provider=target.provider_id, connection=target.connection, model=target.model))
            if request.stream:
                stream = _relay_stream(family, upstream, out_format, passthrough, client_wants_usage)
            else:
                stream = _relay_response(family, upstream, out_format, passthrough)
            async for event in stream:
                yield event
        except httpx.HTTPError as exc:
            yield _error(upstream_errors.transport_error(exc))
        finally:
            await upstream.aclose()


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
    return family.module.canonical_to_request(canonical, request.target.model), False, True


async def _read_bounded(response: httpx.Response, limit: int) -> bytes:
    data = bytearray()
    async for piece in response.aiter_bytes():
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


async def _relay_response(family: Family, upstream: httpx.Response, out_format: int,
                          passthrough: bool) -> AsyncIterator[common_pb2.AnswerEvent]:
    raw = await upstream.aread()
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


async def _frames(family: Family, upstream: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event name, data) per upstream event, SSE or NDJSON, as soon as each is complete."""
    if family.framing == "ndjson":
        lines = NDJSONParser()
        async for piece in upstream.aiter_bytes():
            for line in lines.feed(piece):
                yield "", line.decode("utf-8", errors="replace")
        for line in lines.flush():
            yield "", line.decode("utf-8", errors="replace")
        return
    parser = SSEParser()
    async for piece in upstream.aiter_bytes():
        for frame in parser.feed(piece):
            yield frame.event, frame.data
    for frame in parser.flush():
        yield frame.event, frame.data


async def _relay_stream(family: Family, upstream: httpx.Response, out_format: int, passthrough: bool,
                        client_wants_usage: bool) -> AsyncIterator[common_pb2.AnswerEvent]:
    """Relay each upstream event as soon as it is parsed: nothing is held back.

    The family's decoder reads every event, also in passthrough: it finds the usage, the
    provider's mid-stream error and the end of the stream whatever the caller's format."""
    decoder = family.module.StreamDecoder()
    usage: common_pb2.Usage | None = None
    ended = False
    async for name, text in _frames(family, upstream):
        if family.end_marker and text == family.end_marker:
            ended = True
            continue
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            yield _error(upstream_errors.bad_stream("the upstream stream sent invalid JSON"))
            return
        if not isinstance(data, dict):
            continue
        try:
            chunks = decoder.feed(name, data)
        except UpstreamStreamError as exc:
            yield _stream_error(exc)
            return
        ended = ended or family.ends_stream(name, data)
        usage = _last_usage(chunks) or usage
        if not passthrough:
            for chunk in chunks:
                yield _chunk("", orjson.dumps(chunk), out_format)
        elif client_wants_usage or family.accounting_only is None or not family.accounting_only(data):
            yield _chunk(name, text.encode(), out_format)
    tail = decoder.finish()
    usage = _last_usage(tail) or usage
    if not ended:
        yield _error(upstream_errors.bad_stream("the upstream stream ended before it was complete"))
        return
    if not passthrough:
        for chunk in tail:
            yield _chunk("", orjson.dumps(chunk), out_format)
    if usage is not None:
        yield common_pb2.AnswerEvent(usage=usage)


def _chunk(event: str, data: bytes, out_format: int) -> common_pb2.AnswerEvent:
    return common_pb2.AnswerEvent(chunk=common_pb2.Chunk(event=event, data=data),
                                  format=out_format)  # type: ignore[arg-type]


def _last_usage(chunks: list[Json]) -> common_pb2.Usage | None:
    usage = None
    for chunk in chunks:
        usage = _usage_proto(chunk.get("usage")) or usage
    return usage

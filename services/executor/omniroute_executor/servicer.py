"""The Executor gRPC service: one upstream call per Execute, streamed back event by event."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import orjson
from omniroute import telemetry
from omniroute.formats import openai_chat
from omniroute.formats.framing import SSEParser
from omniroute.v1 import common_pb2, executor_pb2, executor_pb2_grpc

from omniroute_executor import upstream_errors
from omniroute_executor.families.base import Family, Json, StreamedEvent

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
                error_type, message = family.parse_error(upstream.status_code, raw)
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
    passthrough = native_format == family.native_format
    if passthrough:
        body = orjson.loads(request.native_body or request.body)
        source = body
        wants_usage = native_format == common_pb2.OPENAI_CHAT and openai_chat.wants_usage_in_stream(source)
        body["model"] = request.target.model
        return body, True, wants_usage
    canonical = orjson.loads(request.body)
    wants_usage = native_format == common_pb2.OPENAI_CHAT and openai_chat.wants_usage_in_stream(canonical)
    return family.to_provider_request(canonical, request.target.model), False, wants_usage


async def _read_bounded(response: httpx.Response, limit: int) -> bytes:
    data = bytearray()
    async for piece in response.aiter_bytes():
        data += piece
        if len(data) >= limit:
            break
    return bytes(data[:limit])


async def _relay_response(family: Family, upstream: httpx.Response, out_format: int,
                          passthrough: bool) -> AsyncIterator[common_pb2.AnswerEvent]:
    raw = await upstream.aread()
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        yield _error(upstream_errors.bad_stream("the upstream answer is not valid JSON"))
        return
    if not isinstance(parsed, dict):
        yield _error(upstream_errors.bad_stream("the upstream answer is not a JSON object"))
        return
    body = raw if passthrough else orjson.dumps(family.response_to_canonical(parsed))
    yield common_pb2.AnswerEvent(response=body, format=out_format)  # type: ignore[arg-type]
    usage = family.usage_of_response(parsed)
    if usage is not None:
        yield common_pb2.AnswerEvent(usage=usage)


async def _relay_stream(family: Family, upstream: httpx.Response, out_format: int, passthrough: bool,
                        client_wants_usage: bool) -> AsyncIterator[common_pb2.AnswerEvent]:
    """Relay each upstream event as soon as it is parsed: nothing is held back."""
    parser = SSEParser()
    decoder = None if passthrough or family.stream_decoder is None else family.stream_decoder()
    usage: common_pb2.Usage | None = None
    ended = not family.end_marker
    async for piece in upstream.aiter_bytes():
        for frame in parser.feed(piece):
            if family.end_marker and frame.data == family.end_marker:
                ended = True
                continue
            try:
                data = orjson.loads(frame.data)
            except orjson.JSONDecodeError:
                yield _error(upstream_errors.bad_stream("the upstream stream sent invalid JSON"))
                return
            if not isinstance(data, dict):
                continue
            if "error" in data and family.native_format == common_pb2.OPENAI_CHAT:
                error_type, message = family.parse_error(502, frame.data.encode())
                yield _error(common_pb2.Error(status=502, type=error_type, code="upstream_stream_error",
                                              message=message, retryable=False))
                return
            event = StreamedEvent(frame.event, data, frame.data.encode())
            usage = family.usage_of_event(event) or usage
            if decoder is not None:
                for chunk in decoder.feed(frame.event, data):
                    yield common_pb2.AnswerEvent(chunk=common_pb2.Chunk(data=orjson.dumps(chunk)),
                                                 format=out_format)  # type: ignore[arg-type]
                continue
            if passthrough and _is_usage_only(data) and not client_wants_usage:
                continue  # asked upstream for accounting, not by the caller
            yield common_pb2.AnswerEvent(chunk=common_pb2.Chunk(event=frame.event, data=event.raw),
                                         format=out_format)  # type: ignore[arg-type]
    if decoder is not None:
        for chunk in decoder.finish():
            yield common_pb2.AnswerEvent(chunk=common_pb2.Chunk(data=orjson.dumps(chunk)),
                                         format=out_format)  # type: ignore[arg-type]
    if not ended:
        yield _error(upstream_errors.bad_stream("the upstream stream ended before it was complete"))
        return
    if usage is not None:
        yield common_pb2.AnswerEvent(usage=usage)


def _is_usage_only(data: Json) -> bool:
    return data.get("choices") == [] and "usage" in data

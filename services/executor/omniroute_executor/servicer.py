"""The Executor gRPC service: one upstream call per Execute, streamed back event by event.

Thin: it hands a chat call (`ExecuteRequest.chat`) to `chat.ChatUpstream` (what goes upstream
is `provider_body`'s decision; the answer is relayed by `relay`) and any other operation
(`ExecuteRequest.operation`) to `operations`, and turns an unexpected exception into an
`internal_error` event."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import orjson
from opentelemetry import context as otel_context

from omniroute import ssrf, telemetry
from omniroute.answers import internal_error
from omniroute.hop_streams import server as hop_streams_server
from omniroute.hop_streams.tcp import TcpSessionServer
from omniroute.v1 import common_pb2, executor_pb2, executor_pb2_grpc
from omniroute_executor import operations, upstream
from omniroute_executor.chat import ChatUpstream
from omniroute_executor.clients import HttpClients
from omniroute_executor.families.base import Family
from omniroute_executor.provider_body import CallerBody, provider_body
from omniroute_executor.relay import error_event

log = logging.getLogger("omniroute.executor")
_tracer = telemetry.tracer("omniroute.executor")


class ExecutorServicer(executor_pb2_grpc.ExecutorServicer):
    def __init__(self, families: dict[str, Family], http: httpx.AsyncClient | HttpClients,
                 default_timeout_s: float, direct: upstream.DirectClient | None = None) -> None:
        self._families = families
        # One pooled client per distinct outbound proxy (and the direct one, for operations).
        self._clients = http if isinstance(http, HttpClients) else HttpClients(http, default_timeout_s)
        self._default_timeout_s = default_timeout_s
        self._upstream = ChatUpstream(direct=direct or upstream.DirectClient(), proxied=self._clients,
                                      default_timeout_s=default_timeout_s,
                                      allow_private=ssrf.private_allowed())
        # The same sessions on plain TCP (OMNIROUTE_HOP_TRANSPORT=tcp clients); runtime.serve_grpc starts it.
        self.tcp_sessions = TcpSessionServer("/omniroute.v1.Executor/Session", executor_pb2.ExecutorSessionIn,
                                             self.answer)

    async def Execute(self, request: executor_pb2.ExecuteRequest,
                      context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[common_pb2.AnswerEvent]:
        async for event in self.answer(request, telemetry.context_from_metadata(context.invocation_metadata())):
            yield event

    async def Session(self, requests: AsyncIterator[executor_pb2.ExecutorSessionIn],
                context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[common_pb2.SessionOut]:
        """Execute and ExecuteWhole as messages on one long-lived stream (omniroute.hop_streams):
        each request runs as its own task through `answer`, as the unary calls do."""
        async for out in hop_streams_server.serve(requests, context, self.answer, self.tcp_sessions.port):
            yield out

    async def answer(self, request: executor_pb2.ExecuteRequest,
                     parent: otel_context.Context) -> AsyncIterator[common_pb2.AnswerEvent]:
        """One call's answer, whichever transport brought it."""
        with telemetry.call_span(_tracer, "executor.execute", parent) as span:
            span.set_attribute("omniroute.request_id", request.request_id)
            span.set_attribute("omniroute.provider", request.target.provider_id)
            try:
                if request.WhichOneof("call") == "operation":
                    answer = operations.run(self._clients, request, self._default_timeout_s, self._chat)
                else:  # chat (also when the request says neither)
                    answer = self._chat(request)
                async for event in answer:
                    yield event
            except Exception:
                # A bug, not the upstream failing: 500 internal_error (also mid-stream), which the
                # router neither retries elsewhere nor blames on the connection; logged here, once.
                log.exception("request %s failed on an internal error", request.request_id)
                yield error_event(internal_error())

    async def ExecuteWhole(self, request: executor_pb2.ExecuteRequest,
                           context: grpc.aio.ServicerContext[Any, Any]) -> common_pb2.AnswerEvents:
        """A non-streaming answer's events in one message (one gRPC round trip)."""
        return common_pb2.AnswerEvents(events=[event async for event in self.Execute(request, context)])

    async def _chat(self, request: executor_pb2.ExecuteRequest) -> AsyncIterator[common_pb2.AnswerEvent]:
        family = self._families.get(request.target.family)
        if family is None:
            yield error_event(common_pb2.Error(
                status=500, type="server_error", code="no_executor",
                message=f"this executor does not serve the {request.target.family!r} family"))
            return
        try:
            sent = provider_body(family, CallerBody(request.body, request.body_format), request.target.model)
        except (orjson.JSONDecodeError, ValueError) as exc:
            yield error_event(common_pb2.Error(status=400, type="invalid_request_error",
                                               code="invalid_body", message=str(exc)))
            return
        async for event in self._upstream.call(family, request, sent):
            yield event

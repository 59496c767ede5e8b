"""The Router gRPC service: thin — unpack the request into a Call and let its pipeline answer."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from opentelemetry import context as otel_context

from omniroute import telemetry
from omniroute.answers import INTERNAL_ERROR
from omniroute.bus.publisher import EventPublisher
from omniroute.config.watcher import SnapshotHolder
from omniroute.executor_pool import ExecutorPool
from omniroute.hop_streams import server as hop_streams_server
from omniroute.hop_streams.tcp import TcpSessionServer
from omniroute.model_lists import ModelLists
from omniroute.settings import Settings
from omniroute.v1 import common_pb2, router_pb2, router_pb2_grpc
from omniroute_router import pipelines
from omniroute_router.models import Discovered, list_models
from omniroute_router.pipeline.call import Call
from omniroute_router.state import RouterState

log = logging.getLogger("omniroute.router")
_tracer = telemetry.tracer("omniroute.router")


class RouterServicer(router_pb2_grpc.RouterServicer):
    def __init__(self, settings: Settings, config: SnapshotHolder, executors: ExecutorPool,
                 publisher: EventPublisher, state: RouterState) -> None:
        self._config = config
        self._discovered = Discovered(ModelLists(state.redis, settings.env))
        built = pipelines.build(settings, config, executors, state, publisher)
        self.chat, self.operations = built.chat, built.operations
        # The same sessions on plain TCP (OMNIROUTE_HOP_TRANSPORT=tcp clients); runtime.serve_grpc starts it.
        self.tcp_sessions = TcpSessionServer("/omniroute.v1.Router/Session", router_pb2.RouterSessionIn, self.answer)

    async def Chat(self, request: router_pb2.ChatRequest,
                   context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[common_pb2.AnswerEvent]:
        async for event in self.answer(request, telemetry.context_from_metadata(context.invocation_metadata())):
            yield event

    async def ChatWhole(self, request: router_pb2.ChatRequest,
                        context: grpc.aio.ServicerContext[Any, Any]) -> common_pb2.AnswerEvents:
        """A non-streaming answer's events in one message (one gRPC round trip)."""
        return common_pb2.AnswerEvents(events=[event async for event in self.Chat(request, context)])

    async def Session(self, requests: AsyncIterator[router_pb2.RouterSessionIn],
                context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[common_pb2.SessionOut]:
        """Chat and ChatWhole as messages on one long-lived stream (omniroute.hop_streams): each
        request runs as its own task through `answer`, as the unary calls do."""
        async for out in hop_streams_server.serve(requests, context, self.answer, self.tcp_sessions.port):
            yield out

    async def answer(self, request: router_pb2.ChatRequest,
                     parent: otel_context.Context) -> AsyncIterator[common_pb2.AnswerEvent]:
        """One request's answer, whichever transport brought it."""
        with telemetry.call_span(_tracer, "router.chat", parent) as span:
            span.set_attribute("omniroute.request_id", request.request_id)
            span.set_attribute("omniroute.model", request.model)
            call = Call(request=request, snapshot=self._config.current)
            if request.operation != common_pb2.OPERATION_CHAT:  # embeddings, images, audio …
                pipeline = self.operations
            else:
                pipeline = self.chat
                if request.options.get("progress", "").lower() in ("1", "true", "yes"):
                    call.headers["x-omniroute-progress"] = "enabled"
            async for event in pipeline(call):
                yield event

    async def ListModels(self, request: router_pb2.ListModelsRequest,
                         context: grpc.aio.ServicerContext[Any, Any]) -> router_pb2.ListModelsResponse:
        try:
            snapshot = self._config.current
            return list_models(snapshot, await self._discovered.get(snapshot), request.key_id)
        except Exception:
            log.exception("listing models failed on an internal error")
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_ERROR)
            raise  # not reached: abort() raises

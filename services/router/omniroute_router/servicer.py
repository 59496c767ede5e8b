"""The Router gRPC service: thin — unpack, let ChatFlow answer, account."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import redis

from omniroute import telemetry
from omniroute.answers import CHUNK_KINDS, INTERNAL_ERROR, internal_error
from omniroute.bus.publisher import EventPublisher
from omniroute.config.watcher import SnapshotHolder
from omniroute.settings import Settings
from omniroute.v1 import common_pb2, router_pb2, router_pb2_grpc
from omniroute_router import payloads, stateless
from omniroute_router.executors import ExecutorPool
from omniroute_router.flow import ChatFlow
from omniroute_router.models import list_models
from omniroute_router.operations import OperationFlow
from omniroute_router.shared import Shared
from omniroute_router.usage import RequestRecord, publish_usage

log = logging.getLogger("omniroute.router")
_tracer = telemetry.tracer("omniroute.router")


class RouterServicer(router_pb2_grpc.RouterServicer):
    def __init__(self, settings: Settings, config: SnapshotHolder, executors: ExecutorPool,
                 publisher: EventPublisher, shared: Shared) -> None:
        self._settings = settings
        self._config = config
        self._publisher = publisher
        self._executors = executors
        self._flow = ChatFlow(settings, config, executors, shared)
        self._operations = OperationFlow(settings, config, executors, shared, publisher)

    async def Chat(self, request: router_pb2.ChatRequest,
                   context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[common_pb2.AnswerEvent]:
        parent = telemetry.context_from_metadata(context.invocation_metadata())
        with telemetry.call_span(_tracer, "router.chat", parent) as span:
            span.set_attribute("omniroute.request_id", request.request_id)
            span.set_attribute("omniroute.model", request.model)
            if request.operation != common_pb2.OPERATION_CHAT:  # embeddings, images, audio …
                try:
                    async for event in self._operations.answer(request):
                        yield event
                except Exception:
                    log.exception("request %s failed on an internal error", request.request_id)
                    yield common_pb2.AnswerEvent(error=internal_error())
                return
            record = RequestRecord(request_id=request.request_id, key_id=request.key_id,
                                   requested_model=request.model, client_format=request.client_format,
                                   stream=request.stream)
            if payloads.enabled(self._config.current):
                record.capture = payloads.Capture(request.body)
            answered = False
            try:
                async for event in _recorded(self._flow.answer(request, record), record):
                    answered = True
                    yield event
            except redis.RedisError as exc:
                # Limits, cooldowns and breakers live in Redis: without it the router cannot
                # enforce them. It fails closed by default, and says so (not "router
                # unavailable"); with OMNIROUTE_STATE_FAIL_OPEN it serves without them.
                log.warning("redis unavailable: %s", exc)
                if answered:   # the answer started: it ends with an error event
                    record.status, record.error_class = 503, "state_store_unavailable"
                    yield common_pb2.AnswerEvent(error=common_pb2.Error(
                        status=503, type="server_error", code="state_store_unavailable",
                        message="The gateway's shared state (Redis) became unreachable mid-answer."))
                    return
                if self._settings.state_fail_open:
                    async for event in _recorded(stateless.answer(
                            self._executors, self._config.current, request, record,
                            self._settings.upstream_timeout_s), record):
                        yield event
                    return
                record.status, record.error_class = 503, "state_store_unavailable"
                yield common_pb2.AnswerEvent(error=common_pb2.Error(
                    status=503, type="server_error", code="state_store_unavailable", retryable=True,
                    retry_after_s=1.0, message="The gateway's shared state (Redis) is unreachable, so "
                    "rate limits cannot be checked and requests are refused; retry shortly."))
            except Exception:
                # A bug, not an upstream or a backing service failing: 500 internal_error, also
                # mid-stream, and the traceback logged here, once.
                log.exception("request %s failed on an internal error", request.request_id)
                record.status, record.error_class = 500, INTERNAL_ERROR
                yield common_pb2.AnswerEvent(error=internal_error())
            except BaseException as exc:  # includes cancellation by a client that went away
                if record.status < 400:
                    record.status, record.error_class = 499, type(exc).__name__
                raise
            finally:
                publish_usage(self._publisher, self._settings, record)

    async def ChatWhole(self, request: router_pb2.ChatRequest,
                        context: grpc.aio.ServicerContext[Any, Any]) -> common_pb2.AnswerEvents:
        """A non-streaming answer's events in one message (one gRPC round trip)."""
        return common_pb2.AnswerEvents(events=[event async for event in self.Chat(request, context)])

    async def ListModels(self, request: router_pb2.ListModelsRequest,
                         context: grpc.aio.ServicerContext[Any, Any]) -> router_pb2.ListModelsResponse:
        try:
            return list_models(self._config.current)
        except Exception:
            log.exception("listing models failed on an internal error")
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_ERROR)
            raise  # not reached: abort() raises


async def _recorded(events: AsyncIterator[common_pb2.AnswerEvent],
                    record: RequestRecord) -> AsyncIterator[common_pb2.AnswerEvent]:
    """The answer's events for the caller, noted in the request's record on the way (usage is
    for accounting only: the caller's format carries it in its own chunks)."""
    capture = record.capture
    async for event in events:
        kind = event.WhichOneof("kind")
        if kind == "usage":
            record.usage = event.usage
            continue
        if kind in (*CHUNK_KINDS, "response"):
            record.mark_first_chunk()
            if capture is not None:
                capture.add(event)
        elif kind == "error":
            record.status, record.error_class = event.error.status, event.error.code
            record.error_message = event.error.message
        yield event

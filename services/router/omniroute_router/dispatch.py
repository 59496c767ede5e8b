"""Calling executors for one request: try each candidate connection until one answers.

A failure before the answer starts falls back to the next connection transparently; once the
first event of an answer has gone to the caller, a failure ends the answer with an error."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from omniroute import telemetry
from omniroute.v1 import common_pb2, executor_pb2, router_pb2

from omniroute_router.executors import ExecutorPool
from omniroute_router.resolve import Candidate, usable_connections
from omniroute_router.usage import RequestRecord


async def dispatch(pool: ExecutorPool, request: router_pb2.ChatRequest, candidates: list[Candidate],
                   record: RequestRecord, timeout_s: float) -> AsyncIterator[common_pb2.AnswerEvent]:
    last_error: common_pb2.Error | None = None
    for candidate in candidates:
        for connection in usable_connections(candidate.provider):
            target = executor_pb2.Target(
                provider_id=candidate.provider.id, provider_type=candidate.provider.type,
                family=candidate.provider.family, base_url=candidate.provider.base_url,
                api_key=connection.api_key, connection=connection.name, model=candidate.model,
                timeout_s=timeout_s)
            call = executor_pb2.ExecuteRequest(
                request_id=request.request_id, target=target, body=request.body,
                native_format=request.client_format, native_body=request.native_body,
                stream=request.stream)
            started = False
            async for event in _execute(pool, candidate.provider.family, call):
                kind = event.WhichOneof("kind")
                if kind == "error" and not started and event.error.retryable:
                    last_error = event.error
                    record.failed_attempts.append(
                        f"{candidate.provider.id}/{connection.name}:{event.error.status}")
                    break  # fall back to the next connection
                if kind == "start":
                    started = True
                    record.provider, record.connection = candidate.provider.id, connection.name
                    record.model = candidate.model
                yield event
                if kind == "error":
                    return
            else:
                return  # the answer ended normally
    if last_error is not None:
        yield common_pb2.AnswerEvent(error=last_error)



async def _execute(pool: ExecutorPool, family: str,
                   call: executor_pb2.ExecuteRequest) -> AsyncIterator[common_pb2.AnswerEvent]:
    """The executor's answer; a failed gRPC call becomes a retryable error event."""
    try:
        async for event in pool.stub(family).Execute(call, metadata=telemetry.grpc_metadata()):
            yield event
    except grpc.aio.AioRpcError as exc:
        yield common_pb2.AnswerEvent(error=common_pb2.Error(
            status=502, type="server_error", code="executor_unavailable",
            message=f"the {family} executor failed: {exc.code().name}", retryable=True))

"""One call to an executor, for the dispatch and the stateless mode alike: what it carries
(`execute_request`) and the call itself (`execute`)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc

from omniroute import telemetry
from omniroute.executor_pool import ExecutorPool
from omniroute.v1 import common_pb2, executor_pb2, router_pb2
from omniroute_router.selection.capability import family_format

log = logging.getLogger("omniroute.router.dispatch")


def execute_request(request: router_pb2.ChatRequest, target: executor_pb2.Target) -> executor_pb2.ExecuteRequest:
    body, body_format = request_body(request, target.family)
    call = executor_pb2.ExecuteRequest(request_id=request.request_id, target=target, body=body,
                                       body_format=body_format)
    if request.operation == common_pb2.OPERATION_CHAT:
        call.chat.CopyFrom(executor_pb2.ChatCall(stream=request.stream, caller_headers=request.caller_headers))
    else:
        call.operation.CopyFrom(executor_pb2.OperationCall(kind=request.operation, attachment=request.attachment))
    return call


def request_body(request: router_pb2.ChatRequest, family: str) -> tuple[bytes, common_pb2.ApiFormat]:
    """The one body the executor gets: the caller's own when the family speaks its format (chat
    passthrough, and every operation), else the canonical one (format unspecified: translate)."""
    own = request.native_body or request.body  # an OpenAI chat caller's body is the canonical one
    caller_format = request.client_format or common_pb2.OPENAI_CHAT
    if request.operation != common_pb2.OPERATION_CHAT:
        return own, caller_format
    if family_format(family) == caller_format:
        return own, caller_format
    return request.body, common_pb2.API_FORMAT_UNSPECIFIED


async def execute(pool: ExecutorPool, family: str,
                   call: executor_pb2.ExecuteRequest) -> AsyncIterator[common_pb2.AnswerEvent]:
    """The executor's answer; a failed gRPC call becomes a retryable error event. A whole
    (non-streaming) answer comes in one message. A call refused before its first event because
    the executor replica is unavailable (killed, restarting) is made again: round robin takes
    it to another replica, and the account is not blamed for our own executor."""
    stub = pool.stub(family)
    attempts = pool.attempts(family)
    for attempt in range(1, attempts + 1):
        answered = False
        try:
            if not call.chat.stream:  # operations are whole too
                whole = await stub.ExecuteWhole(call, metadata=telemetry.grpc_metadata())
                for event in whole.events:
                    yield event
                return
            async for event in stub.Execute(call, metadata=telemetry.grpc_metadata()):
                answered = True
                yield event
            return
        except grpc.aio.AioRpcError as exc:
            if not answered and exc.code() == grpc.StatusCode.UNAVAILABLE and attempt < attempts:
                log.info("the %s executor was unavailable for %s (%s); trying another replica",
                         family, call.request_id, exc.details())
                continue
            yield common_pb2.AnswerEvent(error=common_pb2.Error(
                status=502, type="server_error", code="executor_unavailable",
                message=f"the {family} executor failed: {exc.code().name}", retryable=True))
            return

"""One call to an executor, for the dispatch and the stateless mode alike."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc

from omniroute import telemetry
from omniroute.executor_pool import ExecutorPool
from omniroute.v1 import common_pb2, executor_pb2

log = logging.getLogger("omniroute.router.dispatch")


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
            if not call.stream:
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

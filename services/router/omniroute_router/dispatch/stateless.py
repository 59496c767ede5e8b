"""Serving without shared state, for when Redis is unreachable and OMNIROUTE_STATE_FAIL_OPEN is on.

Limits, budgets, caches, idempotency, cooldowns and breakers all live in Redis; without it they
cannot be enforced. Failing closed (the default) refuses requests with 503
`state_store_unavailable`; failing open serves them anyway — combos in their configured order,
connections by priority, fallback before the first byte — with no limit checked, and every
answer says so (`x-omniroute-degraded: state-store-unavailable`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from omniroute.config.snapshot import ConfigSnapshot
from omniroute.v1 import common_pb2, executor_pb2, router_pb2
from omniroute_router import policy, targets
from omniroute_router.dispatch import _execute
from omniroute_router.errors import RoutingError
from omniroute_router.executors import ExecutorPool
from omniroute_router.resolve import ComboNode, Node, Target, enabled_connections
from omniroute_router.usage import RequestRecord

DEGRADED_HEADER = {"x-omniroute-degraded": "state-store-unavailable"}


def targets_in_order(node: Node) -> list[Target]:
    if isinstance(node, Target):
        return [node]
    return [target for step in node.steps for target in targets_in_order(step)]


async def answer(pool: ExecutorPool, snapshot: ConfigSnapshot, request: router_pb2.ChatRequest,
                 record: RequestRecord, timeout_s: float) -> AsyncIterator[common_pb2.AnswerEvent]:
    try:
        _, _, requested, node = policy.admit(snapshot, request.key_id, request.model)
    except RoutingError as exc:
        yield common_pb2.AnswerEvent(error=exc.to_proto())
        return
    last_error = common_pb2.Error(status=503, type="server_error", code="no_connection",
                                  message=f"No connection can serve {requested!r}.")
    for target in targets_in_order(node) if isinstance(node, (Target, ComboNode)) else []:
        for connection in enabled_connections(target.provider):
            call = executor_pb2.ExecuteRequest(
                request_id=request.request_id, body=request.body, native_format=request.client_format,
                native_body=request.native_body, stream=request.stream,
                caller_headers=request.caller_headers,
                target=targets.build(snapshot, target.provider, connection, target.model, timeout_s,
                                     targets.process_crypto()))
            started = False
            async for event in _execute(pool, target.provider.family, call):
                kind = event.WhichOneof("kind")
                if kind == "error" and not started and event.error.retryable:
                    last_error = event.error
                    record.failed_attempts.append(f"{target.provider.id}/{connection.name}:{event.error.status}")
                    break
                if kind == "start":
                    started = True
                    event.start.headers.update(DEGRADED_HEADER)
                    record.provider, record.connection, record.model = (
                        target.provider.id, connection.name, target.model)
                yield event
            else:
                return
            if started:
                return
    yield common_pb2.AnswerEvent(error=last_error)

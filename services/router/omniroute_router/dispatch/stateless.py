"""Serving without shared state, for when Redis is unreachable and OMNIROUTE_STATE_FAIL_OPEN is on.

Limits, budgets, caches, idempotency, cooldowns and breakers all live in Redis; without it they
cannot be enforced. Failing closed (the default) refuses requests with 503
`state_store_unavailable`; failing open serves them anyway — combos in their configured order,
connections by priority, fallback before the first byte — with no limit checked, and every
answer says so (`x-omniroute-degraded: state-store-unavailable`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from omniroute import targets
from omniroute.config.snapshot import ConfigSnapshot
from omniroute.executor_pool import ExecutorPool
from omniroute.v1 import common_pb2, router_pb2
from omniroute_router.dispatch.dispatch import Attempts
from omniroute_router.dispatch.executor_call import execute, execute_request
from omniroute_router.selection.resolve import Node, enabled_connections
from omniroute_router.selection.resolve import targets as targets_of

DEGRADED_HEADER = {"x-omniroute-degraded": "state-store-unavailable"}


async def answer(pool: ExecutorPool, snapshot: ConfigSnapshot, request: router_pb2.ChatRequest,
                 requested: str, node: Node, attempts: Attempts,
                 timeout_s: float) -> AsyncIterator[common_pb2.AnswerEvent]:
    """`node`: what `requested` resolved to (after the admit checks)."""
    last_error = common_pb2.Error(status=503, type="server_error", code="no_connection",
                                  message=f"No connection can serve {requested!r}.")
    for target in targets_of(node):  # combos in their configured order
        for connection in enabled_connections(target.provider):
            call = execute_request(request, targets.build(snapshot, target.provider, connection, target.model,
                                                          timeout_s, targets.process_crypto()))
            started = False
            async for event in execute(pool, target.provider.family, call):
                kind = event.WhichOneof("kind")
                if kind == "error" and not started and event.error.retryable:
                    last_error = event.error
                    attempts.failed.append(f"{target.provider.id}/{connection.name}:{event.error.status}")
                    break
                if kind == "start":
                    started = True
                    event.start.headers.update(DEGRADED_HEADER)
                yield event
            else:
                return
            if started:
                return
    yield common_pb2.AnswerEvent(error=last_error)

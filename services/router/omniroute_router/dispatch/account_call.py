"""One executor call on one account, with what the account itself requires around it: its
concurrency slot held for the whole answer, and for OAuth accounts a fresh access token (refreshed
before expiry, and once more after a 401)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from omniroute.config.snapshot import Connection
from omniroute.executor_pool import ExecutorPool
from omniroute.shared_state.ratelimit import Limits
from omniroute.v1 import common_pb2, executor_pb2
from omniroute_router.dispatch.executor_call import execute
from omniroute_router.selection import oauth_tokens
from omniroute_router.selection.account_limits import holding
from omniroute_router.state import RouterState


def unusable(error: str) -> common_pb2.AnswerEvent:
    return common_pb2.AnswerEvent(error=common_pb2.Error(
        status=401, type="authentication_error", code="oauth_refresh_failed", retryable=True,
        message=error))


async def call(shared: RouterState, pool: ExecutorPool, connection: Connection,
               request: executor_pb2.ExecuteRequest, member: str,
               limits: Limits) -> AsyncIterator[common_pb2.AnswerEvent]:
    family = request.target.family
    async with holding(shared.limiter, connection, member, limits):
        if not oauth_tokens.is_oauth(connection):
            async for event in execute(pool, family, request):
                yield event
            return
        tokens = oauth_tokens.for_process(shared.redis, pool)
        token = await tokens.access_token(connection, family=family)
        if token.error:
            yield unusable(token.error)  # marked; the next account is tried
            return
        request.target.api_key = token.value
        retried = False
        while True:
            first = True
            async for event in execute(pool, family, request):
                if (first and not retried and event.WhichOneof("kind") == "error"
                        and event.error.status == 401):
                    # The provider revoked the token early: refresh once and try again.
                    token = await tokens.access_token(connection, rejected=token.value, family=family)
                    if token.error:
                        yield unusable(token.error)
                        return
                    request.target.api_key = token.value
                    retried = True
                    break
                first = False
                yield event
            else:
                return

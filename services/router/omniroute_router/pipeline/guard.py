"""The guard stage, right after the record: what goes wrong inside the router becomes an error
event in the caller's format instead of a broken call.

Limits, cooldowns and breakers live in Redis: without it the router cannot enforce them. It fails
closed by default, and says so (not "router unavailable"); with OMNIROUTE_STATE_FAIL_OPEN a chat
request is served by the stateless mode instead. Any other exception is a bug: 500
internal_error, also mid-stream, with the traceback logged here, once."""

from __future__ import annotations

import logging

import redis

from omniroute.answers import internal_error
from omniroute.v1 import common_pb2
from omniroute_router.pipeline.call import Call, Events, Next, error_event

log = logging.getLogger("omniroute.router")

MID_ANSWER = common_pb2.Error(status=503, type="server_error", code="state_store_unavailable",
                              message="The gateway's shared state (Redis) became unreachable mid-answer.")
UNREACHABLE = common_pb2.Error(
    status=503, type="server_error", code="state_store_unavailable", retryable=True, retry_after_s=1.0,
    message="The gateway's shared state (Redis) is unreachable, so rate limits cannot be checked and "
            "requests are refused; retry shortly.")


class Guard:
    """`stateless` answers a request that found Redis away before its answer started (None:
    refuse it with 503 state_store_unavailable)."""

    def __init__(self, stateless: Next | None) -> None:
        self._stateless = stateless

    async def __call__(self, call: Call, next: Next) -> Events:
        answered = False
        try:
            async for event in next(call):
                answered = True
                yield event
        except redis.RedisError as exc:
            log.warning("redis unavailable: %s", exc)
            if answered:  # the answer started: it ends with an error event
                yield error_event(MID_ANSWER)
            elif self._stateless is not None:
                async for event in self._stateless(call):
                    yield event
            else:
                yield error_event(UNREACHABLE)
        except Exception:
            log.exception("request %s failed on an internal error", call.request.request_id)
            yield error_event(internal_error())

"""The idempotency stage: a request that repeats an idempotency key (the `idempotency_key`
option) within the window gets the first answer's events again instead of a second answer. A
single flight in Redis: one replica produces, the others wait for and replay its result. It
wraps the key limits: a replay costs no rate-limit slot."""

from __future__ import annotations

import contextlib

import redis.asyncio as redis

from omniroute.limits.idempotency import Idempotency
from omniroute.v1 import common_pb2
from omniroute_router.caches.replay import decode_events, encode_events
from omniroute_router.pipeline.call import Call, Events, Next


class Idempotent:
    def __init__(self, idempotency: Idempotency, lease_s: float) -> None:
        self._idempotency = idempotency
        self._lease_s = lease_s  # how long a duplicate waits for a first request that may have died

    async def __call__(self, call: Call, next: Next) -> Events:
        request = call.request
        idempotency_key = request.options.get("idempotency_key", "")
        if not idempotency_key:
            async for event in next(call):
                yield event
            return
        variant = f"{request.client_format}:{int(request.stream)}:{request.model}"
        scope = Idempotency.scope(request.key_id, idempotency_key, variant)
        window_s = call.snapshot.routing.idempotency.window_ms / 1000
        outcome = await self._idempotency.begin(scope, request.request_id, lease_s=self._lease_s,
                                                wait_s=self._lease_s)
        if not outcome.owner and outcome.value:
            call.cache_kind = "idempotent"
            for event in decode_events(outcome.value):
                if event.WhichOneof("kind") == "start":
                    event.start.headers["x-omniroute-idempotent"] = "true"
                yield event
            return
        kept: list[common_pb2.AnswerEvent] = []
        succeeded = False
        try:
            async for event in next(call):
                if event.WhichOneof("kind") != "usage":  # a replay is not billed again
                    kept.append(event)
                yield event
            succeeded = bool(kept) and all(e.WhichOneof("kind") != "error" for e in kept)
        finally:
            # A failed first attempt keeps nothing: a waiting duplicate then makes its own attempt.
            with contextlib.suppress(redis.RedisError):
                await self._idempotency.finish(scope, request.request_id,
                                               encode_events(kept) if succeeded else None, window_s)

"""The idempotency stage, of chat and of every other operation: a request that repeats an
idempotency key (the `idempotency_key` option: Idempotency-Key, or X-Request-Id) within the window
gets the first answer's events again instead of a second answer, and is not billed again. A single
flight in Redis: one replica produces, the others wait for and replay its result. The key is bound
to the first request's fingerprint: the same key with another body, model, stream flag or client
format is a 409 `idempotency_key_reused`. It wraps the key limits: a replay costs no rate-limit
slot."""

from __future__ import annotations

import contextlib
import hashlib

import orjson
import redis.asyncio as redis

from omniroute.shared_state.idempotency import Idempotency, KeyReused
from omniroute.v1 import common_pb2, router_pb2
from omniroute_router.caches.replay import decode_events, encode_events
from omniroute_router.pipeline.call import Call, Events, Next, error_event

REUSED = common_pb2.Error(
    status=409, type="invalid_request_error", code="idempotency_key_reused",
    message="This idempotency key (Idempotency-Key or X-Request-Id) was used for a different request "
            "(body, model or stream flag) within the idempotency window; send a new key for a new request.")


def fingerprint(request: router_pb2.ChatRequest) -> str:
    """What a repeat must share with the first request: the operation, the client format, the
    model, the stream flag, the caller's body (parsed: key order does not matter), the headers
    that say how to read it and the attachment (a transcription's audio)."""
    own_body = request.native_body or request.body
    try:
        body = orjson.loads(own_body) if own_body else None
    except orjson.JSONDecodeError:
        body = own_body.hex()
    parts = [request.operation, request.client_format, request.model, request.stream, body,
             dict(request.caller_headers), hashlib.sha256(request.attachment.data).hexdigest()]
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()


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
        scope = Idempotency.scope(request.key_id, idempotency_key)
        bound_to = fingerprint(request)
        window_s = call.snapshot.routing.idempotency.window_ms / 1000
        try:
            outcome = await self._idempotency.begin(scope, bound_to, request.request_id, lease_s=self._lease_s,
                                                    window_s=window_s)
        except KeyReused:
            yield error_event(REUSED)
            return
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
                await self._idempotency.finish(scope, bound_to, request.request_id,
                                               encode_events(kept) if succeeded else None, window_s)

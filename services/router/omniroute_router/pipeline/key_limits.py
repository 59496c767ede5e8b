"""The key limits stage: per-key rpm, tpm and concurrency, one atomic Redis admission per request,
the same answer whichever replica asks. Over the limit → 429 with Retry-After and x-ratelimit-*.
The request holds its concurrency slot until its answer ends; the answer's tokens count towards
the key's tpm afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import redis.asyncio as redis

from omniroute.config.snapshot import ApiKey, ConfigSnapshot
from omniroute.shared_state.ratelimit import Admission, Limits, RateLimiter
from omniroute_router.errors import RoutingError
from omniroute_router.pipeline.call import Call, Events, Next, error_event


def key_limits(snapshot: ConfigSnapshot, key: ApiKey | None) -> Limits:
    if key is None:
        return Limits()
    return Limits.of(key.limits or snapshot.routing.rate_limit.default_limits)


def scope(key: ApiKey) -> str:
    return f"key:{key.id}"


@contextlib.asynccontextmanager
async def admitted(limiter: RateLimiter, snapshot: ConfigSnapshot, key: ApiKey | None,
                   request_id: str) -> AsyncIterator[Admission | None]:
    """Inside: the request holds its slot (renewed for long streams, released at the end)."""
    limits = key_limits(snapshot, key)
    if key is None or not limits.any:
        yield None
        return
    admission = await limiter.admit(scope(key), limits, request_id)
    if not admission.allowed:
        raise RoutingError(429, f"Rate limit reached for this API key ({', '.join(admission.reasons)}); "
                                f"retry in {admission.retry_after_s:.1f}s.",
                           code="rate_limit_exceeded", type_="rate_limit_error",
                           headers=admission.headers(), retry_after_s=admission.retry_after_s)
    if not limits.concurrency:
        yield admission
        return
    async with limiter.held(scope(key), request_id):
        yield admission


class KeyLimits:
    """`count_tokens`: add the answer's tokens to the key's tpm (chat; operations do not)."""

    def __init__(self, limiter: RateLimiter, *, count_tokens: bool) -> None:
        self._limiter = limiter
        self._count_tokens = count_tokens

    async def __call__(self, call: Call, next: Next) -> Events:
        snapshot, key = call.snapshot, call.key
        tokens = 0
        try:
            async with admitted(self._limiter, snapshot, key, call.request.request_id) as admission:
                if admission is not None:
                    call.headers.update(admission.headers())
                async for event in next(call):
                    if event.WhichOneof("kind") == "usage":
                        tokens = event.usage.input_tokens + event.usage.output_tokens
                    yield event
        except RoutingError as exc:
            yield error_event(exc.to_proto())
        finally:
            if self._count_tokens and key is not None and tokens and key_limits(snapshot, key).tpm:
                with contextlib.suppress(redis.RedisError):
                    await self._limiter.add_tokens(scope(key), tokens)

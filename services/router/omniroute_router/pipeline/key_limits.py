"""Per-key limits (rpm, tpm, concurrency) at the door: one atomic Redis admission per request,
the same answer whichever replica asks. Over the limit → 429 with Retry-After and x-ratelimit-*."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from omniroute.config.snapshot import ApiKey, ConfigSnapshot
from omniroute.limits.ratelimit import Admission, Limits, RateLimiter
from omniroute_router.errors import RoutingError


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

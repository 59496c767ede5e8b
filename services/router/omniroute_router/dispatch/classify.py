"""What a failed attempt means for the connection that failed (the executor already said whether
another target may succeed; this says what to remember about this one)."""

from __future__ import annotations

from enum import Enum

from omniroute.v1 import common_pb2


class Failure(Enum):
    RATE_LIMITED = "rate_limited"      # 429: cool down at least Retry-After
    AUTH = "auth"                      # 401/403: the credential is bad; mark the connection
    MODEL_NOT_FOUND = "model_not_found"  # 404: lock this model on this connection
    MISCONFIGURED = "misconfigured"    # 404 for the path (upstream_not_found): a wrong base_url
    TRANSIENT = "transient"            # 408, 5xx, timeouts, connection errors: back off
    CALLER = "caller"                  # the request itself is wrong: no fallback, no penalty


def classify(error: common_pb2.Error) -> Failure:
    if error.status == 429 or error.code == "rate_limited":
        return Failure.RATE_LIMITED
    if error.status in (401, 403):
        return Failure.AUTH
    if error.status == 404:
        return Failure.MISCONFIGURED if error.code == "upstream_not_found" else Failure.MODEL_NOT_FOUND
    if error.status == 408 or error.status >= 500 or error.retryable:
        return Failure.TRANSIENT
    return Failure.CALLER


def falls_back(failure: Failure) -> bool:
    """Whether another account / target is worth trying."""
    return failure is not Failure.CALLER

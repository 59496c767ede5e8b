"""Classifying a failed upstream call once, so that the router can decide what to do."""

from __future__ import annotations

import email.utils
import time

import httpx
import orjson

from omniroute.v1 import common_pb2
from omniroute_executor.checked_connect import refusal_behind


def retry_after_seconds(headers: httpx.Headers) -> float:
    """Retry-After (seconds or HTTP date), else the provider's reset headers; 0 when none."""
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value) if value else None
            if parsed is not None:
                return max(0.0, parsed.timestamp() - time.time())
    for name in ("retry-after-ms",):
        if headers.get(name):
            try:
                return max(0.0, float(headers[name]) / 1000)
            except ValueError:
                pass
    return 0.0


_CODES = {401: "upstream_auth_failed", 403: "upstream_forbidden", 404: "model_not_found",
          408: "upstream_timeout", 429: "rate_limited"}


def classify_status(status: int, error_type: str, message: str, headers: httpx.Headers,
                    body: bytes) -> common_pb2.Error:
    """An upstream HTTP error. 429, 401/403 (another account may work), 404 (another target may
    have the model, or another connection the path), 408 and 5xx are retryable elsewhere; other
    4xx are the caller's fault."""
    retryable = status in (401, 403, 404, 408, 429) or status >= 500
    code = _CODES.get(status, "upstream_error")
    if status == 404 and not names_a_model(error_type, message, body):
        code = "upstream_not_found"
        message = f"the upstream has no such path (404): check the connection's base_url ({message})"
    return common_pb2.Error(
        status=status, type=error_type, code=code,
        message=message, retryable=retryable, retry_after_s=retry_after_seconds(headers),
        upstream_body=body[:65536])


def names_a_model(error_type: str, message: str, body: bytes) -> bool:
    """Whether a 404 is the provider's own "no such model" (an error object in JSON that names
    a model, or Azure's deployment, as every provider's does) rather than a path the server
    does not have: an HTML page, a plain "Not Found", or a JSON "not found" for the route (a
    wrong base_url)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    said = f"{error_type} {message}".lower()
    return isinstance(parsed, (dict, list)) and ("model" in said or "deployment" in said)


def transport_error(exc: Exception) -> common_pb2.Error:
    refused = refusal_behind(exc)
    if refused is not None:
        return common_pb2.Error(status=502, type="server_error", code="upstream_address_refused",
                                message=f"the upstream address is refused: {refused}", retryable=True)
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):  # aiohttp's timeouts are TimeoutErrors
        return common_pb2.Error(status=504, type="upstream_error", code="upstream_timeout",
                                message="the upstream provider did not answer in time "
                                        f"({type(exc).__name__})",
                                retryable=True)
    return common_pb2.Error(status=502, type="upstream_error", code="upstream_unreachable",
                            message=f"the upstream provider could not be reached: {type(exc).__name__}",
                            retryable=True)


def bad_stream(message: str) -> common_pb2.Error:
    return common_pb2.Error(status=502, type="upstream_error", code="upstream_bad_response",
                            message=message, retryable=True)

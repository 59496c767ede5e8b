"""What every non-chat operation shares: one upstream HTTP exchange, its errors classified the
way chat errors are (so the router's fallback, cooldowns and breakers treat them alike)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from omniroute.formats import registry
from omniroute.v1 import common_pb2, executor_pb2
from omniroute_executor import upstream_errors
from omniroute_executor.families import FAMILIES

Json = dict[str, Any]
_MAX_ANSWER = 64 * 1024 * 1024


class OperationError(Exception):
    """Ends the operation with this error event."""

    def __init__(self, error: common_pb2.Error) -> None:
        super().__init__(error.message)
        self.error = error


def refuse(status: int, message: str, code: str = "unsupported_operation") -> OperationError:
    return OperationError(common_pb2.Error(status=status, type="invalid_request_error", code=code,
                                           message=message, retryable=False))


def timeout(target: executor_pb2.Target, default_s: float) -> httpx.Timeout:
    return httpx.Timeout(target.timeout_s or default_s, connect=10.0)


async def exchange(client: httpx.AsyncClient, family: str, method: str, url: str, *,
                   timeout_: httpx.Timeout, **kwargs: Any) -> httpx.Response:
    """Send one request; a transport failure or an HTTP error status raises OperationError."""
    try:
        response = await client.request(method, url, timeout=timeout_, **kwargs)
    except httpx.HTTPError as exc:
        raise OperationError(upstream_errors.transport_error(exc)) from exc
    if response.status_code >= 400:
        raw = response.content[:65536]
        # The family's own error shape; OpenAI's for the operation-only families.
        wire = FAMILIES[family].wire_format if family in FAMILIES else registry.OPENAI_CHAT
        error_type, message = wire.module.parse_error(response.status_code, raw)
        raise OperationError(upstream_errors.classify_status(
            response.status_code, error_type, message, response.headers, raw))
    return response


def json_of(response: httpx.Response) -> Json:
    try:
        parsed = orjson.loads(response.content[:_MAX_ANSWER])
    except orjson.JSONDecodeError as exc:
        raise OperationError(upstream_errors.bad_stream("the upstream answer is not valid JSON")) from exc
    if not isinstance(parsed, dict):
        raise OperationError(upstream_errors.bad_stream("the upstream answer is not a JSON object"))
    return parsed

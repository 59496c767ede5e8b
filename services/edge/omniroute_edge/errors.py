"""Error responses in the caller's own format (never a bare 500)."""

from __future__ import annotations

import grpc
from starlette.requests import Request
from starlette.responses import Response

from omniroute.answers import INTERNAL_ERROR, internal_error
from omniroute.v1 import common_pb2
from omniroute_edge.client_formats import (
    ANTHROPIC,
    GEMINI,
    OLLAMA,
    OPENAI_CHAT,
    OPENAI_RESPONSES,
    ClientFormat,
)

#: gRPC statuses that say the router could not be reached or did not answer in time: the
#: gateway's own backing service is away (503, retry). Any other status is a bug (500).
_UNAVAILABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                          grpc.StatusCode.CANCELLED, grpc.StatusCode.ABORTED})
#: How grpc.aio reports a servicer that raised: status UNKNOWN, details "Unexpected <class …>: …".
#: Other UNKNOWNs come from the transport (a connection that broke mid-call).
_SERVICER_RAISED = "Unexpected "


def error_response(fmt: ClientFormat, status: int, message: str, *, type_: str | None = None,
                   code: str | None = None, param: str | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    return Response(fmt.error_json(status, message, type_=type_, code=code, param=param),
                    status_code=status, media_type="application/json", headers=headers)


def from_proto(fmt: ClientFormat, error: common_pb2.Error,
               headers: dict[str, str] | None = None) -> Response:
    status = error.status if 400 <= error.status <= 599 else 502
    extra = {**(headers or {}), **error.headers}
    if error.retry_after_s:
        extra["retry-after"] = str(max(1, round(error.retry_after_s)))
    return error_response(fmt, status, error.message or "upstream error", type_=error.type or None,
                          code=error.code or None, headers=extra)


def is_internal(exc: grpc.aio.AioRpcError) -> bool:
    """Whether a failed router call is a bug on the other side (it raised, or said INTERNAL),
    rather than the router being unreachable."""
    code = exc.code()
    if code is grpc.StatusCode.UNKNOWN:
        return (exc.details() or "").startswith(_SERVICER_RAISED)
    return code not in _UNAVAILABLE


def router_error(exc: grpc.aio.AioRpcError, *, mid_stream: bool = False) -> common_pb2.Error:
    """What a failed router call means for the caller: 500 internal_error for a bug, 503
    router_unavailable (502 once the answer started: it was lost) when it was unreachable."""
    if is_internal(exc):
        return internal_error()
    if mid_stream:
        return common_pb2.Error(status=502, type="server_error", code="router_unavailable",
                                message="The gateway lost the answer mid-stream.")
    return common_pb2.Error(status=503, type="server_error", code="router_unavailable",
                            message="The gateway's router is unavailable; retry shortly.")


def from_grpc(fmt: ClientFormat, exc: grpc.aio.AioRpcError, headers: dict[str, str] | None = None) -> Response:
    """A failed router call (before any answer) as an error response in the caller's format."""
    return from_proto(fmt, router_error(exc), headers)


def format_for_path(path: str) -> ClientFormat:
    """The client format a route answers in, judged by its path (for failures that happen
    before or outside the route's own handling)."""
    if path.startswith("/v1/messages"):
        return ANTHROPIC
    if path.startswith("/v1beta/"):
        return GEMINI
    if path.startswith("/v1/responses"):
        return OPENAI_RESPONSES
    if path in ("/api/chat", "/v1/api/chat", "/api/tags"):
        return OLLAMA
    return OPENAI_CHAT


async def internal_error_response(request: Request, exc: Exception) -> Response:
    """The answer to a route that raised: 500 internal_error in the caller's format. The
    server logs the traceback itself ("Exception in ASGI application"), so this does not."""
    error = internal_error()
    return error_response(format_for_path(request.url.path), 500, error.message, type_=INTERNAL_ERROR,
                          code=INTERNAL_ERROR)

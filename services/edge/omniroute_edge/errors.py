"""Error responses in the caller's own format (never a bare 500)."""

from __future__ import annotations

from starlette.responses import Response

from omniroute.v1 import common_pb2
from omniroute_edge.client_formats import ClientFormat


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

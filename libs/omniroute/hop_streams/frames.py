"""What the session frames say, shared by the client and the server side."""

from __future__ import annotations

import grpc

from omniroute.v1 import common_pb2

#: Frames a server may send for one request before the caller grants more, when the caller
#: asks for no window of its own (0 = unlimited is never asked for by our clients).
DEFAULT_WINDOW = 64


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    """The error a unary call would have raised, so that callers handle both transports alike."""
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


def failed(request_id: int, code: grpc.StatusCode, details: str) -> common_pb2.SessionEvents:
    return common_pb2.SessionEvents(id=request_id, failed_code=code.value[0], failed_details=details)


_CODES = {code.value[0]: code for code in grpc.StatusCode}


def status_code(value: int) -> grpc.StatusCode:
    return _CODES.get(value, grpc.StatusCode.UNKNOWN)

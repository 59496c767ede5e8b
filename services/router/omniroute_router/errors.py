"""Errors the router itself answers with (the executor classifies upstream ones)."""

from __future__ import annotations

from omniroute.v1 import common_pb2


class RoutingError(Exception):
    def __init__(self, status: int, message: str, *, code: str, type_: str = "invalid_request_error",
                 headers: dict[str, str] | None = None, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.type = status, message, code, type_
        self.headers = headers or {}
        self.retry_after_s = retry_after_s

    def to_proto(self) -> common_pb2.Error:
        return common_pb2.Error(status=self.status, type=self.type, code=self.code, message=self.message,
                                headers=self.headers, retry_after_s=self.retry_after_s)

"""The error a translator raises for input it cannot accept (answered as a 4xx)."""

from __future__ import annotations


class FormatError(ValueError):
    """Bad input: the caller gets `status` with `message` in its own format's error shape."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code

"""How the MCP executor names what went wrong reaching a tool server (omniroute_executor.mcp.
failures): the SDK wraps failures in nested exception groups; the kind decides what the router
does (refresh a token, count against health, or pass the server's own error on)."""

from __future__ import annotations

import httpx2
import pytest
from mcp.shared.exceptions import MCPError

from omniroute_executor.mcp.failures import Failure, classify


def wrapped(exc: Exception) -> BaseException:
    return ExceptionGroup("outer", [ExceptionGroup("inner", [exc])])


@pytest.mark.parametrize(("exc", "status", "expected"), [
    (wrapped(MCPError(-32603, "Server returned an error response")), 401,
     Failure("unauthorized", -32050, "MCP server s refused the gateway's credentials (HTTP 401)")),
    (TimeoutError(), None, Failure("timeout", -32001, "MCP server s did not answer within 2.5 s")),
    (wrapped(TimeoutError()), 200, Failure("timeout", -32001, "MCP server s did not answer within 2.5 s")),
    (wrapped(MCPError(-32000, "Connection closed")), None,
     Failure("upstream_error", -32050, "MCP server s closed the connection")),
    (wrapped(MCPError(-32603, "Server returned an error response")), 503,
     Failure("upstream_error", -32050, "MCP server s answered HTTP 503")),
    (wrapped(MCPError(-32602, "Unknown resource: x://y")), 200, Failure("rejected", -32602, "Unknown resource: x://y")),
    (wrapped(MCPError(0, "Unknown prompt: p")), 200, Failure("rejected", -32603, "Unknown prompt: p")),
    (wrapped(httpx2.ConnectError("refused")), None,
     Failure("upstream_error", -32050, "MCP server s is unreachable (ConnectError)")),
    (wrapped(ConnectionResetError()), None,
     Failure("upstream_error", -32050, "MCP server s is unreachable (ConnectionResetError)")),
    (wrapped(RuntimeError("odd")), None, Failure("upstream_error", -32050, "MCP server s failed (RuntimeError: odd)")),
])
def test_each_failure_has_its_kind_code_and_message(exc: BaseException, status: int | None,
                                                    expected: Failure) -> None:
    assert classify(exc, "s", status=status, timeout_s=2.5) == expected


def test_a_failure_answers_as_an_mcp_error() -> None:
    answer = Failure("timeout", -32001, "late").answer()
    assert answer.WhichOneof("outcome") == "error"
    assert (answer.error.kind, answer.error.code, answer.error.message) == ("timeout", -32001, "late")

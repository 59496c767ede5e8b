"""What went wrong reaching an MCP server, as the `McpError` the router gets back. Kinds:
`timeout` (no answer within timeout_s), `upstream_error` (unreachable, died, HTTP failure, its
address refused by the SSRF rules: by name before the call, or the address the name resolved to),
`unauthorized` (HTTP 401: the router refreshes an OAuth token once and retries), `rejected`
(the server answered a JSON-RPC error, e.g. an unknown prompt: its code and message pass on)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx2
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, INTERNAL_ERROR

from omniroute.v1 import mcp_pb2
from omniroute_executor.checked_connect import refusal_behind

TIMEOUT_CODE = -32001         # MCP's request timeout
UPSTREAM_ERROR_CODE = -32050  # the gateway's "the tool server failed" (router: errors.UPSTREAM_ERROR)


@dataclass(frozen=True, slots=True)
class Failure:
    kind: str
    code: int
    message: str

    def answer(self) -> mcp_pb2.McpCallResult:
        return mcp_pb2.McpCallResult(error=mcp_pb2.McpError(code=self.code, message=self.message,
                                                            kind=self.kind))


def address_refused(server_id: str, reason: str) -> Failure:
    return Failure("upstream_error", UPSTREAM_ERROR_CODE, f"MCP server {server_id}: its address is refused ({reason})")


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups: the SDK's task groups wrap them."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def classify(exc: BaseException, server_id: str, *, status: int | None, timeout_s: float) -> Failure:
    """`status`: the last HTTP status the server answered with (None: none, or stdio)."""
    if status == 401:
        return Failure("unauthorized", UPSTREAM_ERROR_CODE,
                       f"MCP server {server_id} refused the gateway's credentials (HTTP 401)")
    found = leaves(exc)
    for leaf in found:
        refused = refusal_behind(leaf)
        if refused is not None:  # the connection was not made: the address its name resolved to
            return address_refused(server_id, str(refused))
    if any(isinstance(leaf, TimeoutError) for leaf in found):
        return Failure("timeout", TIMEOUT_CODE, f"MCP server {server_id} did not answer within {timeout_s:g} s")
    for leaf in found:
        if isinstance(leaf, MCPError):
            if leaf.code == CONNECTION_CLOSED:
                return Failure("upstream_error", UPSTREAM_ERROR_CODE,
                               f"MCP server {server_id} closed the connection")
            if status is not None and status >= 400:
                return Failure("upstream_error", UPSTREAM_ERROR_CODE,
                               f"MCP server {server_id} answered HTTP {status}")
            # A JSON-RPC error needs a code; some servers send 0 for an unexpected failure.
            return Failure("rejected", leaf.code or INTERNAL_ERROR, leaf.message)
    for leaf in found:
        if isinstance(leaf, httpx2.TransportError | OSError):
            return Failure("upstream_error", UPSTREAM_ERROR_CODE,
                           f"MCP server {server_id} is unreachable ({type(leaf).__name__})")
    described = "; ".join(f"{type(leaf).__name__}: {leaf}" for leaf in found)[:300]
    return Failure("upstream_error", UPSTREAM_ERROR_CODE, f"MCP server {server_id} failed ({described})")

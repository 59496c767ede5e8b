"""The JSON-RPC error codes the gateway answers MCP clients with (the edge passes them on).
JSON-RPC leaves -32000..-32099 to the server; MCP names -32001 (request timeout) and -32002
(resource not found); the rest are the gateway's own, one per kind."""

from __future__ import annotations

from omniroute.v1 import mcp_pb2

REFUSED = -32003          # not in the key's (or team's) allow-list, or an unusable key
RATE_LIMITED = -32029     # tool_calls_per_minute (key or team)
TIMEOUT = -32001          # the server did not answer within its timeout_s
NOT_FOUND = -32002        # a resource URI none of the key's servers lists
UPSTREAM_ERROR = -32050   # the server failed, is unreachable or is marked unhealthy
INTERNAL = -32603


def error(kind: str, code: int, message: str, retry_after_s: float = 0.0) -> mcp_pb2.McpCallResult:
    return mcp_pb2.McpCallResult(error=mcp_pb2.McpError(code=code, message=message, kind=kind,
                                                        retry_after_s=retry_after_s))

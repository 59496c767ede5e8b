"""The MCP gateway's decisions (issue 21): who may see and call which upstream tool, resource
and prompt, the tool-call rate limits, the servers' health, and the record of every call. The
edge asks (`McpGateway`), the MCP executor reaches the servers (`McpUpstream`)."""

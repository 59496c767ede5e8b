"""The MCP executor (issue 21): `McpUpstream` — the only workload that reaches the organisation's
upstream MCP tool servers, as the provider executors alone reach model providers. The router
names the server (credentials included); this package opens the MCP client session (official
`mcp` SDK), makes the call within the server's timeout and answers MCP's own JSON."""

-- Issue 21, the MCP gateway: the organisation's upstream MCP tool servers, who may use which of
-- their tools, and one row per tool call.

-- transport 'http': Streamable HTTP at `url`; 'stdio': `command` (argv) run by an executor.
-- Credentials the gateway injects are encrypted with the master key like connections'
-- credentials: `headers_enc` (JSON object of HTTP headers, e.g. Authorization) and `env_enc`
-- (JSON object of environment variables for a stdio server); or an OAuth connection's token.
CREATE TABLE IF NOT EXISTS mcp_servers (
    id                   text PRIMARY KEY,
    name                 text NOT NULL DEFAULT '',
    transport            text NOT NULL CHECK (transport IN ('http', 'stdio')),
    url                  text,
    command              jsonb,
    headers_enc          text,
    env_enc              text,
    oauth_connection_id  text REFERENCES connections(id) ON DELETE SET NULL,
    timeout_s            double precision NOT NULL DEFAULT 30,
    price_per_call_usd   numeric(14, 9) NOT NULL DEFAULT 0,
    enabled              boolean NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Tool access, default deny: {server id: ["*"] | [tool names]}. A team's map is what its keys
-- may use at most; a key's map (null = its team's) narrows it, never widens it.
ALTER TABLE teams ADD COLUMN IF NOT EXISTS mcp_access jsonb;
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS mcp_access jsonb;
-- Tool calls per minute, per key and per team (exact across replicas, like model limits):
-- kept in the existing `limits` documents as "tool_calls_per_minute".

-- One row per tool call, written by accounting from the bus (idempotent on request_id).
CREATE TABLE IF NOT EXISTS mcp_calls (
    request_id     text PRIMARY KEY,
    key_id         text NOT NULL DEFAULT '',
    team_id        text NOT NULL DEFAULT '',
    person_id      text NOT NULL DEFAULT '',
    server_id      text NOT NULL,
    method         text NOT NULL,             -- tools/call, resources/read, prompts/get
    name           text NOT NULL DEFAULT '',  -- tool, resource uri or prompt name
    args_bytes     integer NOT NULL DEFAULT 0,
    args_sha256    text NOT NULL DEFAULT '',
    result_bytes   integer NOT NULL DEFAULT 0,
    latency_ms     double precision NOT NULL DEFAULT 0,
    outcome        text NOT NULL,             -- ok, tool_error, refused, upstream_error, timeout
    error_message  text NOT NULL DEFAULT '',
    cost_usd       numeric(20, 9) NOT NULL DEFAULT 0,
    started_at     timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS mcp_calls_key_started ON mcp_calls (key_id, started_at);
CREATE INDEX IF NOT EXISTS mcp_calls_team_started ON mcp_calls (team_id, started_at);
CREATE INDEX IF NOT EXISTS mcp_calls_server_started ON mcp_calls (server_id, started_at);

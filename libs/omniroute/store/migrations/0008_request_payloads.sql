-- Detailed request logging (admin general setting detailed_logging): the request and answer of a
-- request, redacted and capped by the router, one row per usage row. Written by accounting in the
-- transaction that writes the usage row (idempotent on request_id); deleted with it (retention).
CREATE TABLE IF NOT EXISTS request_payloads (
    request_id        text PRIMARY KEY REFERENCES usage (request_id) ON DELETE CASCADE,
    request_payload   text NOT NULL DEFAULT '',
    response_payload  text NOT NULL DEFAULT ''
);

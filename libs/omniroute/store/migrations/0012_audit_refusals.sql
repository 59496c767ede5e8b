-- Issue 19: gateway refusals (edge and router AuditEvents) are kept in audit_log by accounting.
-- An event redelivered by JetStream (a batch nak'ed after its rows were written) must not make a
-- second row: one row per refused request and action.
CREATE UNIQUE INDEX IF NOT EXISTS audit_log_gateway_refusal
    ON audit_log (request_id, action) WHERE action LIKE 'gateway.%';

-- Control plane: admin settings, the admin password, the audit log.

-- Named settings documents (general, require_login, proxy, ip_filter, …). Each value is the JSON
-- of a validated pydantic model in omniroute_admin.settings_model; edges and routers read this
-- table into their snapshot (ConfigSnapshot.settings), so it must never hold a clear secret.
CREATE TABLE IF NOT EXISTS admin_settings (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row: the dashboard / management password as an argon2id hash. Kept apart from
-- admin_settings so that the hash never reaches a snapshot or a settings answer.
CREATE TABLE IF NOT EXISTS admin_password (
    id             boolean PRIMARY KEY DEFAULT true CHECK (id),
    password_hash  text NOT NULL,
    is_initial     boolean NOT NULL DEFAULT true,   -- still INITIAL_PASSWORD: first-run state
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Every management change. Digests (sha256 of the canonical JSON) rather than the values:
-- enough to prove what changed and to compare with a backup, without copying secrets here.
CREATE TABLE IF NOT EXISTS audit_log (
    id             bigserial PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    actor          text NOT NULL,
    action         text NOT NULL,
    target         text NOT NULL DEFAULT '',
    before_digest  text,
    after_digest   text,
    ip             text NOT NULL DEFAULT '',
    request_id     text NOT NULL DEFAULT '',
    detail         jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at);
CREATE INDEX IF NOT EXISTS audit_log_action_at ON audit_log (action, at);

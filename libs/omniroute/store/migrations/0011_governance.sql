-- Issue 19, org governance: teams (each with its own budget, limits and allowed models), people
-- with a role (owner, admin, team_admin, viewer), management API tokens, and the key lifecycle
-- (owner team/person, rotation with a grace period, revocation). Every existing key moves into
-- the team "default", so nothing is lost on upgrade.

CREATE TABLE IF NOT EXISTS teams (
    id              text PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    allowed_models  jsonb,                 -- null = all
    limits          jsonb NOT NULL DEFAULT '{}',   -- rpm, tpm, concurrency: shared by the team's keys
    budget          jsonb,                 -- {limit_usd, period, alert_at}: reserved like a key's
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
INSERT INTO teams (id, name) VALUES ('default', 'default') ON CONFLICT DO NOTHING;

-- People who manage the gateway. source: 'oidc' (created at their first single sign-on),
-- 'api' (created through the API or dashboard), 'config' (declared in the config file).
-- The break-glass owner is the admin_password row, not a person.
CREATE TABLE IF NOT EXISTS people (
    id             text PRIMARY KEY,
    email          text NOT NULL UNIQUE,
    name           text NOT NULL DEFAULT '',
    role           text NOT NULL CHECK (role IN ('owner', 'admin', 'team_admin', 'viewer')),
    team_ids       jsonb NOT NULL DEFAULT '[]',   -- the teams a team_admin manages
    source         text NOT NULL DEFAULT 'api',
    oidc_subject   text UNIQUE,                   -- "<issuer>|<sub>" once they signed in
    enabled        boolean NOT NULL DEFAULT true,
    last_login_at  timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Bearer tokens for automation (CI, Terraform, scripts): hashed like API keys.
CREATE TABLE IF NOT EXISTS management_tokens (
    id            text PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    token_hash    text NOT NULL UNIQUE,
    token_prefix  text NOT NULL,
    role          text NOT NULL CHECK (role IN ('owner', 'admin', 'team_admin', 'viewer')),
    team_id       text REFERENCES teams(id) ON DELETE CASCADE,   -- scope of a team_admin token
    expires_at    timestamptz,
    created_by    text NOT NULL DEFAULT '',
    last_used_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS team_id text NOT NULL DEFAULT 'default' REFERENCES teams(id);
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS person_id text REFERENCES people(id) ON DELETE SET NULL;
-- Rotation: the previous secret stays valid until previous_valid_until, then it is refused.
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS previous_key_hash text;
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS previous_valid_until timestamptz;
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS revoked_at timestamptz;
CREATE INDEX IF NOT EXISTS api_keys_team ON api_keys (team_id);

-- Usage and spend by team and by person (copied from the key when the request ran).
ALTER TABLE usage ADD COLUMN IF NOT EXISTS team_id text NOT NULL DEFAULT '';
ALTER TABLE usage ADD COLUMN IF NOT EXISTS person_id text NOT NULL DEFAULT '';
UPDATE usage SET team_id = 'default' WHERE key_id <> '' AND team_id = '';
CREATE INDEX IF NOT EXISTS usage_team_started ON usage (team_id, started_at);

-- The audit log names the real actor (person:<email>, token:<name>, key:<id>, admin = the
-- break-glass password) and, where one applies, the team the act concerned.
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS team_id text NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS audit_log_team_at ON audit_log (team_id, at);
CREATE INDEX IF NOT EXISTS audit_log_actor_at ON audit_log (actor, at);

-- Admin extras: cloud sync state, eval suites and their runs. Independent of 0005 (either may be
-- applied first on an existing database).

-- One row: this deployment's side of configuration sync (omniroute_admin.sync_api).
-- As a sync target: the token peers present (its sha256 to check it, and the token itself
-- encrypted with the master key, because the transport key for credentials derives from it).
-- As a client: the remote deployment's URL and token (encrypted), and the remote document's
-- ETag as of the last push or pull, sent as If-Match so that a concurrent edit is detected.
CREATE TABLE IF NOT EXISTS sync_state (
    id                boolean PRIMARY KEY DEFAULT true CHECK (id),
    token_hash        text,
    token_enc         text,
    token_created_at  timestamptz,
    remote_url        text,
    remote_token_enc  text,
    remote_etag       text,
    last_push_at      timestamptz,
    last_pull_at      timestamptz,
    local_etag        text,            -- this deployment's document ETag at the last sync
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Eval suites: a named list of cases (omniroute_admin.evals_model.Suite, as JSON).
CREATE TABLE IF NOT EXISTS eval_suites (
    name        text PRIMARY KEY,
    spec        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per run of a suite; `results` holds one entry per case (passed, output, why).
-- Not a foreign key to eval_suites: a run stays readable after its suite is deleted.
CREATE TABLE IF NOT EXISTS eval_runs (
    id           bigserial PRIMARY KEY,
    suite        text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    total        integer NOT NULL DEFAULT 0,
    passed       integer NOT NULL DEFAULT 0,
    results      jsonb NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS eval_runs_suite_started ON eval_runs (suite, started_at DESC);

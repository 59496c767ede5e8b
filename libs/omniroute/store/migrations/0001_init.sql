-- Configuration: read into every service's in-memory snapshot, never per request.
CREATE TABLE providers (
    id          text PRIMARY KEY,
    type        text NOT NULL,
    base_url    text,
    models      jsonb NOT NULL DEFAULT '[]',
    settings    jsonb NOT NULL DEFAULT '{}',
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE connections (
    id           text PRIMARY KEY,
    provider_id  text NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    name         text NOT NULL,
    api_key_enc  text,               -- Fernet token (master key); never the clear key
    priority     integer NOT NULL DEFAULT 0,
    enabled      boolean NOT NULL DEFAULT true,
    settings     jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider_id, name)
);

CREATE TABLE api_keys (
    id              text PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    key_hash        text NOT NULL UNIQUE,  -- sha256 of the key: keys are long random tokens
    key_prefix      text NOT NULL,         -- first characters, to recognise a key in lists
    enabled         boolean NOT NULL DEFAULT true,
    allowed_models  jsonb,                 -- null = all
    limits          jsonb NOT NULL DEFAULT '{}',
    budget          jsonb,
    expires_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per request, written by accounting from JetStream, idempotent on request_id.
CREATE TABLE usage (
    request_id        text PRIMARY KEY,
    key_id            text NOT NULL DEFAULT '',
    provider          text NOT NULL DEFAULT '',
    connection        text NOT NULL DEFAULT '',
    model             text NOT NULL DEFAULT '',
    requested_model   text NOT NULL DEFAULT '',
    combo             text NOT NULL DEFAULT '',
    input_tokens      bigint NOT NULL DEFAULT 0,
    output_tokens     bigint NOT NULL DEFAULT 0,
    cached_tokens     bigint NOT NULL DEFAULT 0,
    reasoning_tokens  bigint NOT NULL DEFAULT 0,
    status            integer NOT NULL,
    error_class       text NOT NULL DEFAULT '',
    latency_ms        double precision NOT NULL DEFAULT 0,
    ttft_ms           double precision NOT NULL DEFAULT 0,
    stream            boolean NOT NULL DEFAULT false,
    client_format     text NOT NULL DEFAULT '',
    cache_hit         boolean NOT NULL DEFAULT false,
    failed_attempts   jsonb NOT NULL DEFAULT '[]',
    started_at        timestamptz NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_started_at ON usage (started_at);
CREATE INDEX usage_key_started ON usage (key_id, started_at);
CREATE INDEX usage_provider_started ON usage (provider, started_at);

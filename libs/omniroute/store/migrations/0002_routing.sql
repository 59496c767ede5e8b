-- Routing configuration: aliases, combos, and global routing settings (resilience profiles,
-- fallback model, request shaping, policies, cache/idempotency/rate-limit knobs), read into the
-- router's in-memory snapshot; never queried per request.
CREATE TABLE aliases (
    alias       text PRIMARY KEY,
    target      text NOT NULL,          -- provider/model, another alias or a combo name
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE combos (
    name        text PRIMARY KEY,
    spec        jsonb NOT NULL,         -- omniroute.config.routing_spec.ComboSpec
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per RoutingSettings field (key = field name, value = its JSON), so that one admin
-- endpoint replaces one setting without a read-modify-write of the others.
CREATE TABLE routing_settings (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

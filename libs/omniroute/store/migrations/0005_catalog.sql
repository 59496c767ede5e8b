-- Provider catalog extras: custom models per provider (by kind) and custom provider nodes
-- (user-defined OpenAI- or Anthropic-compatible endpoints, offered as provider templates).

CREATE TABLE IF NOT EXISTS provider_models (
    provider_id  text NOT NULL,
    model        text NOT NULL,
    kind         text NOT NULL DEFAULT 'chat'
                 CHECK (kind IN ('chat', 'embedding', 'image', 'audio')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider_id, model, kind)
);

CREATE TABLE IF NOT EXISTS provider_nodes (
    id           text PRIMARY KEY,
    name         text NOT NULL,
    type         text NOT NULL CHECK (type IN ('openai-compatible', 'anthropic-compatible')),
    base_url     text NOT NULL,
    prefix       text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now()
);

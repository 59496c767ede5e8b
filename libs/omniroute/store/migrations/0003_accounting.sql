-- Accounting: prices, the cost of each usage row, and indexes that keep usage queries fast at
-- tens of millions of rows.

-- List prices in USD per million tokens. `provider_type` is a catalog type ("openai",
-- "anthropic", "gemini", …) or '*' for a price that holds whichever provider serves the model.
-- Seeded from omniroute/store/pricing_seed.yaml by accounting / admin (source = 'seed'); an edit
-- through the admin API sets source = 'admin', and seeding never overwrites those rows.
CREATE TABLE IF NOT EXISTS pricing (
    provider_type     text NOT NULL,
    model             text NOT NULL,
    input_per_mtok    numeric(14, 6) NOT NULL DEFAULT 0,
    output_per_mtok   numeric(14, 6) NOT NULL DEFAULT 0,
    cached_per_mtok   numeric(14, 6),           -- null: cached input is billed as input
    source            text NOT NULL DEFAULT 'admin',
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider_type, model)
);

-- Computed once by accounting from the pricing table when the row is written; later price
-- edits do not rewrite history. numeric(20, 9): nano-dollar precision, so sums are exact and
-- match the Redis spend counters (kept in integer nano-dollars).
ALTER TABLE usage ADD COLUMN IF NOT EXISTS cost_usd numeric(20, 9) NOT NULL DEFAULT 0;

-- Rows arrive roughly in started_at order, so a BRIN index answers time-range scans
-- (history, retention deletes) at a tiny fraction of a b-tree's size and write cost.
-- Partitioning by month would make retention a DROP PARTITION, but it forces the primary key to
-- include started_at; idempotency on request_id alone is worth more here.
DROP INDEX IF EXISTS usage_started_at;
CREATE INDEX IF NOT EXISTS usage_started_at_brin ON usage USING brin (started_at)
    WITH (pages_per_range = 32);
-- Per-connection usage (/api/usage/{connectionId}) and per-model breakdowns; key and provider
-- already have (x, started_at) b-trees from 0001.
CREATE INDEX IF NOT EXISTS usage_connection_started ON usage (connection, started_at);
CREATE INDEX IF NOT EXISTS usage_model_started ON usage (model, started_at);

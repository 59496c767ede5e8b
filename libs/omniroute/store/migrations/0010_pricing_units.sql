-- Issue 18, everything priced: besides input / output / cache-read tokens, a price names the
-- cache-write and reasoning token prices (null: billed as input / output), USD per image by
-- "size/quality" (JSON object of decimal strings), USD per second of transcribed audio, and the
-- public price page a seeded list price was taken from.
ALTER TABLE pricing ADD COLUMN IF NOT EXISTS cache_write_per_mtok numeric(14, 6);
ALTER TABLE pricing ADD COLUMN IF NOT EXISTS reasoning_per_mtok numeric(14, 6);
ALTER TABLE pricing ADD COLUMN IF NOT EXISTS per_image jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE pricing ADD COLUMN IF NOT EXISTS per_audio_second numeric(14, 9) NOT NULL DEFAULT 0;
ALTER TABLE pricing ADD COLUMN IF NOT EXISTS source_url text NOT NULL DEFAULT '';

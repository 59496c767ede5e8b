-- Why a request failed, as its caller was told (UsageEvent.error_message): with status and
-- error_class, a request log row says why a refused request was refused ('' on success).
ALTER TABLE usage ADD COLUMN IF NOT EXISTS error_message text NOT NULL DEFAULT '';

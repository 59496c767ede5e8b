-- Audio transcription usage: the audio's duration in seconds (speech to text is billed by length,
-- not tokens). NULL for every other kind of request.
ALTER TABLE usage ADD COLUMN IF NOT EXISTS audio_seconds double precision;

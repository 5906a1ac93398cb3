-- Issue 20: how a number answers calls and shows itself online (as
-- migrations/sqlite/0017_call_and_presence_settings.sql).
ALTER TABLE instances ADD COLUMN reject_calls BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE instances ADD COLUMN reject_call_message TEXT;
ALTER TABLE instances ADD COLUMN always_online BOOLEAN NOT NULL DEFAULT FALSE;

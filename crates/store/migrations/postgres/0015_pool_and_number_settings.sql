-- Issue 19: a pool's sending settings, a number's own quiet hours, and its re-warm state
-- (as migrations/sqlite/0014_pool_and_number_settings.sql).
ALTER TABLE pools ADD COLUMN sticky BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE pools ADD COLUMN sticky_window_days BIGINT NOT NULL DEFAULT 30;
ALTER TABLE pools ADD COLUMN prefer_country BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE pools ADD COLUMN per_contact_per_hour BIGINT NOT NULL DEFAULT 0;
ALTER TABLE pools ADD COLUMN quiet_hours_json TEXT;
ALTER TABLE instances ADD COLUMN quiet_hours_json TEXT;
ALTER TABLE instances ADD COLUMN rewarm_from BIGINT;

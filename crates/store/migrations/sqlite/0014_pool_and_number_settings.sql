-- Issue 19: a pool's sending settings, a number's own quiet hours, and its re-warm state.
-- A pool without a row has the defaults below (the same as `PoolSettings::default`).
ALTER TABLE pools ADD COLUMN sticky INTEGER NOT NULL DEFAULT 1;
ALTER TABLE pools ADD COLUMN sticky_window_days INTEGER NOT NULL DEFAULT 30;
ALTER TABLE pools ADD COLUMN prefer_country INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pools ADD COLUMN per_contact_per_hour INTEGER NOT NULL DEFAULT 0;
-- The pool's active hours as the server validated them (JSON, opaque to the store); NULL:
-- no quiet hours.
ALTER TABLE pools ADD COLUMN quiet_hours_json TEXT;
-- The number's own active hours (JSON), overriding its pool's; NULL: the pool's.
ALTER TABLE instances ADD COLUMN quiet_hours_json TEXT;
-- When the number's re-warming began (milliseconds), after it was idle too long; NULL when it
-- is not re-warming.
ALTER TABLE instances ADD COLUMN rewarm_from INTEGER;

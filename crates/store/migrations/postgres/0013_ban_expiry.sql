-- When a number's temporary ban ends (as migrations/sqlite/0012_ban_expiry.sql).
ALTER TABLE instances ADD COLUMN ban_until BIGINT;

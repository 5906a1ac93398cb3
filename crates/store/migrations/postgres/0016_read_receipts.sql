-- Whether a number marks a contact's unread messages read before replying (as
-- migrations/sqlite/0015_read_receipts.sql).
ALTER TABLE instances ADD COLUMN read_receipts TEXT NOT NULL DEFAULT 'off';

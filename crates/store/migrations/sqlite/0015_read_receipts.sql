-- Whether a number marks a contact's unread messages read before replying to them
-- (`off` or `auto`; "seen before reply"). What is unread is kept in memory only.
ALTER TABLE instances ADD COLUMN read_receipts TEXT NOT NULL DEFAULT 'off';

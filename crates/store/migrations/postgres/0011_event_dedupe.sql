-- A received message is recorded once (as migrations/sqlite/0010_event_dedupe.sql): an append
-- skips an event whose key (number, chat, sender, WhatsApp id) the log already holds.
ALTER TABLE events ADD COLUMN dedupe_key TEXT COLLATE "C";
CREATE UNIQUE INDEX events_by_dedupe_key ON events (dedupe_key) WHERE dedupe_key IS NOT NULL;

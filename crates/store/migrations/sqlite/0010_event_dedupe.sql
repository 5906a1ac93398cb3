-- A received message is recorded once. WhatsApp delivers again what the gateway had not yet
-- acknowledged (the gateway acknowledges only once the event is on disk, so a crash between
-- the two leads to a redelivery); the redelivery has the same key (number, chat, sender,
-- WhatsApp id), and an append skips an event whose key the log already holds.
ALTER TABLE events ADD COLUMN dedupe_key TEXT;
CREATE UNIQUE INDEX events_by_dedupe_key ON events (dedupe_key) WHERE dedupe_key IS NOT NULL;

-- Delivery options and conversations (issue 19).
--
-- Messages: `send_at` (not sent before), `expires_at` (not sent at or after: `expired`
-- instead), `queue_at` (the later of created_at and send_at: the order of the send queue, so
-- a message scheduled for later never stands in front of one due now) and `chosen_by` (why
-- the number that took it was chosen: sticky, rotation, forced, geo).
ALTER TABLE messages ADD COLUMN send_at INTEGER;
ALTER TABLE messages ADD COLUMN expires_at INTEGER;
ALTER TABLE messages ADD COLUMN queue_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN chosen_by TEXT;
UPDATE messages SET queue_at = created_at;

-- The queue pages (as 0009_queue_pages.sql), now in due order.
DROP INDEX messages_queue_by_pool;
DROP INDEX messages_queue_by_number;
CREATE INDEX messages_queue_by_pool ON messages (tenant_id, pool, queue_at, id)
    WHERE status = 'queued' AND forced = FALSE;
CREATE INDEX messages_queue_by_number ON messages (instance_id, queue_at, id)
    WHERE status = 'queued' AND forced = TRUE;
-- The expiry sweep and the timers of scheduled messages.
CREATE INDEX messages_expiring ON messages (expires_at)
    WHERE status = 'queued' AND expires_at IS NOT NULL;
CREATE INDEX messages_scheduled ON messages (queue_at)
    WHERE status = 'queued' AND send_at IS NOT NULL;

-- A campaign recipient's own delivery options (the campaign's defaults applied at accept).
ALTER TABLE campaign_recipients ADD COLUMN send_at INTEGER;
ALTER TABLE campaign_recipients ADD COLUMN ttl_seconds INTEGER;

-- Conversations: one row per (number, 1:1 contact by phone JID, or LID when the phone is
-- unknown), from the first message either way on. `started_by` is `out` when the number
-- wrote first (a first contact), `in` when the contact did. What sticky sender and the
-- first-contact rules read. Rows go with their number and tenant.
CREATE TABLE conversations (
    instance_id TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    contact     TEXT NOT NULL,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    started_by  TEXT NOT NULL CHECK (started_by IN ('in', 'out')),
    first_at    INTEGER NOT NULL,
    last_at     INTEGER NOT NULL,
    PRIMARY KEY (instance_id, contact)
);
-- A contact's conversations across the tenant's numbers (sticky sender).
CREATE INDEX conversations_by_contact ON conversations (tenant_id, contact, last_at);
-- A number's first contacts in a period (the first-contact cap after a restart).
CREATE INDEX conversations_first_contacts ON conversations (instance_id, first_at)
    WHERE started_by = 'out';

-- Delivery options and conversations (issue 19; as migrations/sqlite/0013_delivery_options.sql).
ALTER TABLE messages ADD COLUMN send_at BIGINT;
ALTER TABLE messages ADD COLUMN expires_at BIGINT;
ALTER TABLE messages ADD COLUMN queue_at BIGINT;
ALTER TABLE messages ADD COLUMN chosen_by TEXT;
UPDATE messages SET queue_at = created_at;
ALTER TABLE messages ALTER COLUMN queue_at SET NOT NULL;

DROP INDEX messages_queue_by_pool;
DROP INDEX messages_queue_by_number;
CREATE INDEX messages_queue_by_pool ON messages (tenant_id, pool, queue_at, id)
    WHERE status = 'queued' AND forced = FALSE;
CREATE INDEX messages_queue_by_number ON messages (instance_id, queue_at, id)
    WHERE status = 'queued' AND forced = TRUE;
CREATE INDEX messages_expiring ON messages (expires_at)
    WHERE status = 'queued' AND expires_at IS NOT NULL;
CREATE INDEX messages_scheduled ON messages (queue_at)
    WHERE status = 'queued' AND send_at IS NOT NULL;

-- A campaign recipient's own delivery options (the campaign's defaults applied at accept).
ALTER TABLE campaign_recipients ADD COLUMN send_at BIGINT;
ALTER TABLE campaign_recipients ADD COLUMN ttl_seconds BIGINT;

CREATE TABLE conversations (
    instance_id TEXT COLLATE "C" NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    contact     TEXT COLLATE "C" NOT NULL,
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    started_by  TEXT NOT NULL CHECK (started_by IN ('in', 'out')),
    first_at    BIGINT NOT NULL,
    last_at     BIGINT NOT NULL,
    PRIMARY KEY (instance_id, contact)
);
CREATE INDEX conversations_by_contact ON conversations (tenant_id, contact, last_at);
CREATE INDEX conversations_first_contacts ON conversations (instance_id, first_at)
    WHERE started_by = 'out';

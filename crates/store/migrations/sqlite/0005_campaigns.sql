-- Campaigns: one template, many recipients, fed gradually into the send queue. A campaign's
-- messages are ordinary rows of `messages` carrying its id, each with the idempotency key
-- `campaign:<id>:<index>`, so that feeding a recipient twice (a restart between storing its
-- message and moving `next_index`) is refused by the unique key index.
CREATE TABLE campaigns (
    id            TEXT PRIMARY KEY NOT NULL,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    template      TEXT NOT NULL,
    pool          TEXT NOT NULL,
    -- The schedule window as the server validated it, JSON; NULL: any time.
    schedule_json TEXT,
    status        TEXT NOT NULL,
    recipients    INTEGER NOT NULL CHECK (recipients >= 0),
    -- Every recipient below this index has its message in `messages` (or was skipped).
    next_index    INTEGER NOT NULL DEFAULT 0 CHECK (next_index >= 0),
    skipped       INTEGER NOT NULL DEFAULT 0 CHECK (skipped >= 0),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    ended_at      INTEGER,
    -- The client's `Idempotency-Key` of the request that created it.
    idempotency_key TEXT
);
CREATE UNIQUE INDEX campaigns_by_idempotency_key ON campaigns (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX campaigns_by_tenant ON campaigns (tenant_id, created_at, id);
CREATE INDEX campaigns_active ON campaigns (status) WHERE status IN ('running', 'paused');

CREATE TABLE campaign_recipients (
    campaign_id TEXT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    to_jid      TEXT NOT NULL,
    fields_json TEXT NOT NULL,
    PRIMARY KEY (campaign_id, idx)
) WITHOUT ROWID;

ALTER TABLE messages ADD COLUMN campaign_id TEXT;
CREATE INDEX messages_by_campaign ON messages (campaign_id, status) WHERE campaign_id IS NOT NULL;

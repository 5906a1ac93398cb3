-- Campaigns (as migrations/sqlite/0005_campaigns.sql): one template, many recipients, fed
-- gradually into the send queue. A campaign's messages are ordinary rows of `messages`
-- carrying its id, each with the idempotency key `campaign:<id>:<index>`, so that feeding a
-- recipient twice (a restart between storing its message and moving `next_index`) is refused
-- by the unique key index.
CREATE TABLE campaigns (
    id            TEXT COLLATE "C" PRIMARY KEY,
    tenant_id     TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    template      TEXT NOT NULL,
    pool          TEXT COLLATE "C" NOT NULL,
    -- The schedule window as the server validated it, JSON; NULL: any time.
    schedule_json TEXT,
    status        TEXT NOT NULL,
    recipients    BIGINT NOT NULL CHECK (recipients >= 0),
    -- Every recipient below this index has its message in `messages` (or was skipped).
    next_index    BIGINT NOT NULL DEFAULT 0 CHECK (next_index >= 0),
    skipped       BIGINT NOT NULL DEFAULT 0 CHECK (skipped >= 0),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    ended_at      BIGINT,
    -- The client's `Idempotency-Key` of the request that created it.
    idempotency_key TEXT
);
CREATE UNIQUE INDEX campaigns_by_idempotency_key ON campaigns (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX campaigns_by_tenant ON campaigns (tenant_id, created_at, id);
CREATE INDEX campaigns_active ON campaigns (status) WHERE status IN ('running', 'paused');

CREATE TABLE campaign_recipients (
    campaign_id TEXT COLLATE "C" NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    idx         BIGINT NOT NULL,
    to_jid      TEXT NOT NULL,
    fields_json TEXT NOT NULL,
    PRIMARY KEY (campaign_id, idx)
);

ALTER TABLE messages ADD COLUMN campaign_id TEXT COLLATE "C";
CREATE INDEX messages_by_campaign ON messages (campaign_id, status) WHERE campaign_id IS NOT NULL;

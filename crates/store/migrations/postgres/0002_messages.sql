-- Outbound messages and their durable queue, and each number's health score (as
-- migrations/sqlite/0002_messages.sql).

ALTER TABLE instances ADD COLUMN health_score BIGINT NOT NULL DEFAULT 100
    CHECK (health_score BETWEEN 0 AND 100);

-- Outbound messages: a message is accepted only once it is here (the 202 follows the
-- commit). `wa_id` is fixed at accept time so that a resend after a crash reuses it.
CREATE TABLE messages (
    id              TEXT COLLATE "C" PRIMARY KEY,
    tenant_id       TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    wa_id           TEXT NOT NULL,
    instance_id     TEXT COLLATE "C",
    forced          BOOLEAN NOT NULL,
    pool            TEXT NOT NULL,
    to_jid          TEXT NOT NULL,
    body            TEXT NOT NULL,
    mentions_json   TEXT NOT NULL DEFAULT '[]',
    menu_json       TEXT,
    status          TEXT NOT NULL,
    error           TEXT,
    idempotency_key TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE UNIQUE INDEX messages_by_idempotency_key ON messages (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_by_tenant ON messages (tenant_id, created_at, id);
CREATE INDEX messages_pending ON messages (status) WHERE status IN ('queued', 'sending');
CREATE INDEX messages_by_instance_sent ON messages (instance_id, sent_at);
CREATE INDEX messages_by_wa_id ON messages (instance_id, wa_id);

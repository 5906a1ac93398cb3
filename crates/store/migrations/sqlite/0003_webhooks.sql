-- Webhooks and their durable deliveries.

-- The secret is sealed with aad "webhook:" || id.
CREATE TABLE webhooks (
    id            TEXT PRIMARY KEY NOT NULL,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url           TEXT NOT NULL,
    events_json   TEXT NOT NULL,
    secret_sealed BLOB NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX webhooks_by_tenant ON webhooks (tenant_id);

-- One row per (webhook, event): made by the fan-out from the event log, retried until
-- delivered or dead-lettered. `payload` is the exact body sent each time.
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY NOT NULL,
    webhook_id      TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    tenant_id       TEXT NOT NULL,
    event_id        INTEGER NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, created_at);

-- One alert target per tenant: a short human message when a number drops or leaves rotation.
CREATE TABLE alerts (
    tenant_id  TEXT PRIMARY KEY NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url        TEXT NOT NULL,
    format     TEXT NOT NULL,
    on_json    TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

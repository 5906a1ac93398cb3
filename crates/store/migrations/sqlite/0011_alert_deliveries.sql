-- Durable alerts: one row per alert an event calls for, made from the event log after a
-- stored cursor (`meta` key `alert_fanout_cursor`) and retried until delivered or failed.
-- `payload` is the exact body posted on every attempt; the URL is the tenant's alert target
-- at the time of each attempt (sealed in `alerts`).
CREATE TABLE alert_deliveries (
    id              TEXT PRIMARY KEY NOT NULL,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- No reference: the record outlives a deleted number.
    instance_id     TEXT,
    event_id        INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    text            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
    UNIQUE (tenant_id, event_id)
);
-- Due alerts, per tenant, oldest first (scans take them round-robin across tenants).
CREATE INDEX alert_deliveries_due ON alert_deliveries (tenant_id, next_attempt_at, id)
    WHERE status = 'pending';
-- A tenant's alerts, newest first (ids are time-ordered), by status or all.
CREATE INDEX alert_deliveries_by_tenant ON alert_deliveries (tenant_id, id);
CREATE INDEX alert_deliveries_ended ON alert_deliveries (updated_at) WHERE status <> 'pending';

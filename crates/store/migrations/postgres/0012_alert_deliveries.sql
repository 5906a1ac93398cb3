-- Durable alerts (as migrations/sqlite/0011_alert_deliveries.sql).
CREATE TABLE alert_deliveries (
    id              TEXT COLLATE "C" PRIMARY KEY,
    tenant_id       TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    instance_id     TEXT COLLATE "C",
    event_id        BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    text            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_status     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    UNIQUE (tenant_id, event_id)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (tenant_id, next_attempt_at, id)
    WHERE status = 'pending';
CREATE INDEX alert_deliveries_by_tenant ON alert_deliveries (tenant_id, id);
CREATE INDEX alert_deliveries_ended ON alert_deliveries (updated_at) WHERE status <> 'pending';

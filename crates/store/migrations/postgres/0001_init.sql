-- The first schema of the PostgreSQL store: the same tables and rules as the SQLite store
-- (migrations/sqlite/0001..0004), folded into one file because this backend starts here.
-- Timestamps are BIGINT Unix milliseconds (UTC), as in SQLite: exact round trips, and one
-- conversion for both backends. Secrets (session values, proxy URLs, webhook secrets) are
-- stored only as sealed blobs (see src/seal.rs), with the same associated data as SQLite.
-- Keys and ids that are range-scanned or ordered use COLLATE "C" so that they compare as
-- bytes whatever the database's collation (prefix scans rely on it).

-- Facts about the database itself, such as the sealed master-key check value.
CREATE TABLE meta (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE tenants (
    id         TEXT COLLATE "C" PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Only the SHA-256 of a key's secret part is kept.
CREATE TABLE api_keys (
    id          TEXT COLLATE "C" PRIMARY KEY,
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    secret_hash BYTEA NOT NULL CHECK (length(secret_hash) = 32),
    created_at  BIGINT NOT NULL
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id);

CREATE TABLE instances (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    tenant_id          TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    pool               TEXT COLLATE "C" NOT NULL,
    status             TEXT NOT NULL,
    reason             TEXT,
    detail             TEXT,
    phone              TEXT,
    jid                TEXT,
    lid                TEXT,
    warming_days       BIGINT NOT NULL CHECK (warming_days >= 0),
    -- The full proxy URL with its credentials, sealed with aad "proxy:" || id.
    proxy_sealed       BYTEA,
    -- Only the limits the client set (a LimitsPatch).
    limits_json        TEXT NOT NULL DEFAULT '{}',
    first_connected_at BIGINT,
    connected_at       BIGINT,
    created_at         BIGINT NOT NULL,
    health_score       BIGINT NOT NULL DEFAULT 100 CHECK (health_score BETWEEN 0 AND 100),
    -- Named: the store maps a violation of it to "an instance named … already exists".
    CONSTRAINT instances_name_unique UNIQUE (tenant_id, name)
);

-- One number's protocol state; each value sealed with aad instance_id || 0x00 || key.
CREATE TABLE session_values (
    instance_id TEXT COLLATE "C" NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    key         TEXT COLLATE "C" NOT NULL,
    value       BYTEA NOT NULL,
    PRIMARY KEY (instance_id, key)
);

-- Pools with a chosen strategy; pools without a row use round_robin.
CREATE TABLE pools (
    tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name      TEXT COLLATE "C" NOT NULL,
    strategy  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- The append-only event log. A sequence never hands out an id twice, even after the newest
-- events are pruned: SSE clients resume by id (Last-Event-ID). Appends are serialized with a
-- transaction-scoped advisory lock (see `append_events` in src/postgres.rs), so ids become
-- visible in increasing order. No foreign keys: an event outlives its instance, and the
-- tenant's events are removed explicitly with the tenant.
CREATE TABLE events (
    id          BIGSERIAL PRIMARY KEY,
    tenant_id   TEXT COLLATE "C" NOT NULL,
    instance_id TEXT COLLATE "C",
    kind        TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX events_by_tenant ON events (tenant_id, id);
CREATE INDEX events_by_created_at ON events (created_at);

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
CREATE INDEX messages_by_menu_chat ON messages (instance_id, to_jid, created_at)
    WHERE menu_json IS NOT NULL;

-- Webhooks; the secret is sealed with aad "webhook:" || id.
CREATE TABLE webhooks (
    id            TEXT COLLATE "C" PRIMARY KEY,
    tenant_id     TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url           TEXT NOT NULL,
    events_json   TEXT NOT NULL,
    secret_sealed BYTEA NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX webhooks_by_tenant ON webhooks (tenant_id);

-- One row per (webhook, event): made by the fan-out from the event log, retried until
-- delivered or dead-lettered. `payload` is the exact body sent each time.
CREATE TABLE deliveries (
    id              TEXT COLLATE "C" PRIMARY KEY,
    webhook_id      TEXT COLLATE "C" NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    tenant_id       TEXT COLLATE "C" NOT NULL,
    event_id        BIGINT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_status     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, created_at);

-- One alert target per tenant.
CREATE TABLE alerts (
    tenant_id  TEXT COLLATE "C" PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    url        TEXT NOT NULL,
    format     TEXT NOT NULL,
    on_json    TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- What the gateway has learned of WhatsApp's hidden identifiers: each LID's phone number.
CREATE TABLE lid_map (
    lid        TEXT COLLATE "C" PRIMARY KEY,
    phone_jid  TEXT COLLATE "C" NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX lid_map_by_phone ON lid_map (phone_jid);

-- The first schema of the SQLite store.
-- Timestamps are INTEGER Unix milliseconds (UTC): exact round trips, cheap comparisons.
-- Secrets (session values, proxy URLs) are stored only as sealed blobs (see src/seal.rs).

-- Facts about the data directory itself, such as the sealed master-key check value.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
);

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- Only the SHA-256 of a key's secret part is kept.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY NOT NULL,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    secret_hash BLOB NOT NULL CHECK (length(secret_hash) = 32),
    created_at  INTEGER NOT NULL
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id);

CREATE TABLE instances (
    id                 TEXT PRIMARY KEY NOT NULL,
    tenant_id          TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    pool               TEXT NOT NULL,
    status             TEXT NOT NULL,
    reason             TEXT,
    detail             TEXT,
    phone              TEXT,
    jid                TEXT,
    lid                TEXT,
    warming_days       INTEGER NOT NULL CHECK (warming_days >= 0),
    -- The full proxy URL with its credentials, sealed with aad "proxy:" || id.
    proxy_sealed       BLOB,
    -- Only the limits the client set (a LimitsPatch).
    limits_json        TEXT NOT NULL DEFAULT '{}',
    first_connected_at INTEGER,
    connected_at       INTEGER,
    created_at         INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);

-- One number's protocol state; each value sealed with aad instance_id || 0x00 || key.
CREATE TABLE session_values (
    instance_id TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    value       BLOB NOT NULL,
    PRIMARY KEY (instance_id, key)
);

-- Pools with a chosen strategy; pools without a row use round_robin.
CREATE TABLE pools (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name      TEXT NOT NULL,
    strategy  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- The append-only event log. AUTOINCREMENT so that ids are never reused, even after the
-- newest events are pruned: SSE clients resume by id (Last-Event-ID).
-- No foreign keys: an event outlives its instance, and the tenant's events are removed
-- explicitly with the tenant.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   TEXT NOT NULL,
    instance_id TEXT,
    kind        TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX events_by_tenant ON events (tenant_id, id);
CREATE INDEX events_by_created_at ON events (created_at);

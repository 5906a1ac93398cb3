-- The first schema of the PostgreSQL store, numbered like migrations/sqlite (same file
-- numbers and names for the same change; 0008_cluster is PostgreSQL's own). Databases
-- created before this numbering (one 0001_init for 0001..0004) are renumbered at open, see
-- src/postgres/legacy.rs.
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

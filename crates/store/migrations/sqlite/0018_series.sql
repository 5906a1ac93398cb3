-- Time series for the dashboard's charts (see docs/api.md "Stats"): what each number sent and
-- its lowest health score, and each pool's highest queue depth, per bucket. A bucket is
-- `tier` seconds wide and starts at `bucket_at` (Unix ms, a multiple of the width); the
-- sampler upserts two tiers per sample: its own interval (a minute by default, kept 48 h)
-- and the hour (kept --series-retention-days). Counts add up and gauges keep their extreme,
-- so samples from several nodes, or several in one bucket, merge without counting twice.
-- No foreign key (a sample of a number deleted meanwhile must not fail the whole batch, and
-- a number's history outlives it); rows go with their tenant in delete_tenant.
CREATE TABLE number_series (
    tenant_id   TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    tier        INTEGER NOT NULL,
    bucket_at   INTEGER NOT NULL,
    sends       INTEGER NOT NULL,
    -- The lowest health score sampled in the bucket; NULL when the number was not sampled
    -- (only sends of a number handed to another node meanwhile were counted).
    health      INTEGER,
    PRIMARY KEY (tenant_id, instance_id, tier, bucket_at)
);
CREATE INDEX number_series_by_tenant ON number_series (tenant_id, tier, bucket_at);
CREATE INDEX number_series_by_age ON number_series (tier, bucket_at);

CREATE TABLE pool_series (
    tenant_id   TEXT NOT NULL,
    pool        TEXT NOT NULL,
    tier        INTEGER NOT NULL,
    bucket_at   INTEGER NOT NULL,
    -- The highest number of queued messages sampled in the bucket.
    queue_depth INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, pool, tier, bucket_at)
);
CREATE INDEX pool_series_by_age ON pool_series (tier, bucket_at);

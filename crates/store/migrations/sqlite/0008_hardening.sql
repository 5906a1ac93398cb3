-- Hardening (issue 17).

-- Due deliveries per webhook, oldest first: scans read each webhook's as an index range and
-- take them round-robin across webhooks.
CREATE INDEX deliveries_due_by_webhook ON deliveries (webhook_id, next_attempt_at, id)
    WHERE status = 'pending';

-- Webhook secret rotation: the replaced secret signs deliveries too until it expires. Sealed
-- with aad "webhook-previous:" || id.
ALTER TABLE webhooks ADD COLUMN previous_secret_sealed BLOB;
ALTER TABLE webhooks ADD COLUMN previous_secret_expires_at INTEGER;

-- Alert URLs sealed at rest (a Slack URL's path is its secret), with aad "alert:" || tenant_id.
-- `url` is left empty once sealed; rows written before are sealed at the next open (sealing
-- needs the master key) and read from `url` until then.
ALTER TABLE alerts ADD COLUMN url_sealed BLOB;

-- The LID ↔ phone map per tenant: one tenant's mappings never show in another's events.
-- Existing rows had no tenant: each is kept for the tenants whose own number it names (the
-- mapping a number learns when paired); the rest are learnt again from traffic.
CREATE TABLE lid_map_per_tenant (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    lid        TEXT NOT NULL,
    phone_jid  TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, lid)
);
INSERT OR IGNORE INTO lid_map_per_tenant (tenant_id, lid, phone_jid, updated_at)
    SELECT DISTINCT i.tenant_id, m.lid, m.phone_jid, m.updated_at
    FROM lid_map m JOIN instances i ON i.lid = m.lid OR i.jid = m.phone_jid;
DROP TABLE lid_map;
ALTER TABLE lid_map_per_tenant RENAME TO lid_map;
CREATE INDEX lid_map_by_phone ON lid_map (tenant_id, phone_jid, updated_at);

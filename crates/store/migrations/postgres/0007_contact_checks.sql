-- The contact-check cache (as migrations/sqlite/0007_contact_checks.sql): which phones are on
-- WhatsApp, as a number of the tenant last found out. Shared by every node and kept across
-- restarts, so a phone is not asked again within the cache's TTL (each look-up costs a number
-- pacing and exposure). One row per (tenant, phone in E.164 with '+'); a new answer replaces
-- the old. Rows go with the tenant.
CREATE TABLE contact_checks (
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    phone       TEXT COLLATE "C" NOT NULL,
    on_whatsapp BOOLEAN NOT NULL,
    -- The phone-number JID and the LID, without device; NULL when unknown.
    jid         TEXT,
    lid         TEXT,
    checked_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, phone)
);
CREATE INDEX contact_checks_by_checked_at ON contact_checks (checked_at);

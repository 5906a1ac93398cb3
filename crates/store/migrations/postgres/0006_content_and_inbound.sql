-- What an outbound message carries besides its text, and an index of received messages (as
-- migrations/sqlite/0006_content_and_inbound.sql).

-- A media file, a location, a contact card, a reaction or the message it quotes, as the
-- server's JSON; NULL for a plain text.
ALTER TABLE messages ADD COLUMN content_json TEXT;
-- A reply or reaction names a message by its WhatsApp id alone, whichever number sent it.
CREATE INDEX messages_by_tenant_wa_id ON messages (tenant_id, wa_id);

-- Received messages, so that a reply or reaction can name one (the quote's preview comes
-- from here) and its media can be fetched later. One row per (number, WhatsApp id): a
-- repeat of the same message is ignored. Rows go with their number and their tenant.
CREATE TABLE inbound (
    instance_id TEXT COLLATE "C" NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    wa_id       TEXT NOT NULL,
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    chat        TEXT NOT NULL,
    sender      TEXT NOT NULL,
    body        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    -- The driver's media description, JSON; NULL when it is not a media file.
    media_json  TEXT,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (instance_id, wa_id)
);
CREATE INDEX inbound_by_tenant_wa_id ON inbound (tenant_id, wa_id);
CREATE INDEX inbound_by_received_at ON inbound (received_at);

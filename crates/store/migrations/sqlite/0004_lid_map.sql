-- What the gateway has learned of WhatsApp's hidden identifiers: each LID's phone number.
CREATE TABLE lid_map (
    lid        TEXT PRIMARY KEY NOT NULL,
    phone_jid  TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX lid_map_by_phone ON lid_map (phone_jid);
CREATE INDEX messages_by_menu_chat ON messages (instance_id, to_jid, created_at) WHERE menu_json IS NOT NULL;

-- What the gateway has learned of WhatsApp's hidden identifiers: each LID's phone number.
CREATE TABLE lid_map (
    lid        TEXT COLLATE "C" PRIMARY KEY,
    phone_jid  TEXT COLLATE "C" NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX lid_map_by_phone ON lid_map (phone_jid);
CREATE INDEX messages_by_menu_chat ON messages (instance_id, to_jid, created_at)
    WHERE menu_json IS NOT NULL;

-- Conversations (as migrations/sqlite/0016_chats.sql): a chat is one number's conversation
-- with one contact or group; its messages are the rows of `inbound` and `messages` of that
-- chat, read together; `chats` lists the chats newest first.

ALTER TABLE inbound ADD COLUMN chat_jid TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE inbound ADD COLUMN sender_jid TEXT NOT NULL DEFAULT '';
ALTER TABLE inbound ADD COLUMN sender_lid TEXT;
ALTER TABLE inbound ADD COLUMN push_name TEXT;
ALTER TABLE inbound ADD COLUMN reply_to TEXT;
UPDATE inbound SET chat_jid = chat, sender_jid = sender;
CREATE INDEX inbound_by_chat ON inbound (tenant_id, chat_jid, received_at);
CREATE INDEX messages_by_chat ON messages (tenant_id, to_jid, created_at, id);

CREATE TABLE chats (
    instance_id TEXT COLLATE "C" NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    jid         TEXT COLLATE "C" NOT NULL,
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    lid         TEXT COLLATE "C",
    push_name   TEXT,
    last_at     BIGINT NOT NULL,
    read_at     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (instance_id, jid)
);
CREATE INDEX chats_by_tenant ON chats (tenant_id, last_at, instance_id, jid);
CREATE INDEX chats_by_instance ON chats (instance_id, last_at, jid);
CREATE INDEX chats_by_jid ON chats (jid);
CREATE INDEX chats_by_last_at ON chats (last_at);

-- The chat rows follow the message rows in the statement that writes them, so keeping them
-- costs no statement, round trip or commit more on the inbound, accept and send paths.
CREATE FUNCTION inbound_into_chats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chats (instance_id, jid, tenant_id, lid, push_name, last_at, read_at)
    VALUES (NEW.instance_id, NEW.chat_jid, NEW.tenant_id,
            CASE WHEN NEW.chat_jid LIKE '%@g.us' THEN NULL ELSE NEW.sender_lid END,
            CASE WHEN NEW.chat_jid LIKE '%@g.us' THEN NULL ELSE NEW.push_name END,
            NEW.received_at, 0)
    ON CONFLICT (instance_id, jid) DO UPDATE SET
        last_at = GREATEST(excluded.last_at, chats.last_at),
        lid = COALESCE(excluded.lid, chats.lid),
        push_name = COALESCE(excluded.push_name, chats.push_name);
    RETURN NULL;
END $$;
CREATE TRIGGER inbound_into_chats AFTER INSERT ON inbound
    FOR EACH ROW EXECUTE FUNCTION inbound_into_chats();

-- A sent message joins its number's chat once it has a number; writing to the contact reads
-- what it wrote before.
CREATE FUNCTION messages_into_chats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.instance_id IS NULL
        OR (TG_OP = 'UPDATE' AND OLD.instance_id IS NOT DISTINCT FROM NEW.instance_id) THEN
        RETURN NULL;
    END IF;
    INSERT INTO chats (instance_id, jid, tenant_id, lid, push_name, last_at, read_at)
    SELECT NEW.instance_id,
            CASE WHEN NEW.to_jid LIKE '%@lid' THEN COALESCE((SELECT phone_jid FROM lid_map
                WHERE tenant_id = NEW.tenant_id AND lid = NEW.to_jid), NEW.to_jid)
                ELSE NEW.to_jid END,
            NEW.tenant_id,
            CASE WHEN NEW.to_jid LIKE '%@lid' THEN NEW.to_jid END,
            NULL, NEW.created_at, NEW.created_at
    -- `messages.instance_id` has no foreign key (a message outlives its number): a number
    -- that is gone gets no chat, and the message is stored all the same.
    FROM instances WHERE id = NEW.instance_id
    ON CONFLICT (instance_id, jid) DO UPDATE SET
        last_at = GREATEST(excluded.last_at, chats.last_at),
        read_at = GREATEST(excluded.read_at, chats.read_at),
        lid = COALESCE(excluded.lid, chats.lid);
    RETURN NULL;
END $$;
CREATE TRIGGER messages_into_chats AFTER INSERT OR UPDATE OF instance_id ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_into_chats();

-- The chats of what is already stored.
INSERT INTO chats (instance_id, jid, tenant_id, last_at, read_at)
    SELECT instance_id, chat_jid, tenant_id, MAX(received_at), 0 FROM inbound
    GROUP BY instance_id, chat_jid, tenant_id;
INSERT INTO chats (instance_id, jid, tenant_id, last_at, read_at)
    SELECT instance_id, to_jid, tenant_id, MAX(created_at), MAX(created_at) FROM messages
    WHERE instance_id IN (SELECT id FROM instances) GROUP BY instance_id, to_jid, tenant_id
    ON CONFLICT (instance_id, jid) DO UPDATE SET
        last_at = GREATEST(excluded.last_at, chats.last_at),
        read_at = excluded.read_at;

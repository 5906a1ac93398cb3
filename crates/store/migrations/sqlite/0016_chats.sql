-- Conversations (`GET /v1/chats`, `GET /v1/chats/{jid}/messages`): a chat is one number's
-- conversation with one contact or group. Its messages are the rows of `inbound` (received)
-- and `messages` (sent) of that chat, read together; `chats` lists the chats newest first.

-- What a received message's chat view needs besides its text: the chat and the sender by
-- phone JID where the LID's phone was known when it arrived (else as addressed), the
-- sender's LID and push name, and the WhatsApp id it quotes (or, for a reaction, reacts to).
ALTER TABLE inbound ADD COLUMN chat_jid TEXT NOT NULL DEFAULT '';
ALTER TABLE inbound ADD COLUMN sender_jid TEXT NOT NULL DEFAULT '';
ALTER TABLE inbound ADD COLUMN sender_lid TEXT;
ALTER TABLE inbound ADD COLUMN push_name TEXT;
ALTER TABLE inbound ADD COLUMN reply_to TEXT;
UPDATE inbound SET chat_jid = chat, sender_jid = sender;
-- One chat's received messages, newest first (and its unread count).
CREATE INDEX inbound_by_chat ON inbound (tenant_id, chat_jid, received_at);
-- One chat's sent messages, newest first.
CREATE INDEX messages_by_chat ON messages (tenant_id, to_jid, created_at, id);

-- One row per (number, chat). `jid` is the contact's phone JID, the group's JID, or the
-- contact's LID while its phone is unknown (learning the phone moves the row: see
-- `LidStore::learn_lid`). `last_at` orders the list; inbound messages received after
-- `read_at` are unread (a read receipt or a reply from the number moves it).
CREATE TABLE chats (
    instance_id TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    jid         TEXT NOT NULL,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    lid         TEXT,
    push_name   TEXT,
    last_at     INTEGER NOT NULL,
    read_at     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (instance_id, jid)
);
CREATE INDEX chats_by_tenant ON chats (tenant_id, last_at, instance_id, jid);
CREATE INDEX chats_by_instance ON chats (instance_id, last_at, jid);
CREATE INDEX chats_by_jid ON chats (jid);
CREATE INDEX chats_by_last_at ON chats (last_at);

-- The chat rows follow the message rows in the statement that writes them (the inbound
-- sink's group commit, the accept's group commit, the scheduler binding a message to a
-- number), so keeping them costs no statement, round trip or commit more on those paths.
CREATE TRIGGER inbound_into_chats AFTER INSERT ON inbound
BEGIN
    INSERT INTO chats (instance_id, jid, tenant_id, lid, push_name, last_at, read_at)
    VALUES (NEW.instance_id, NEW.chat_jid, NEW.tenant_id,
            CASE WHEN NEW.chat_jid LIKE '%@g.us' THEN NULL ELSE NEW.sender_lid END,
            CASE WHEN NEW.chat_jid LIKE '%@g.us' THEN NULL ELSE NEW.push_name END,
            NEW.received_at, 0)
    ON CONFLICT (instance_id, jid) DO UPDATE SET
        last_at = CASE WHEN excluded.last_at > chats.last_at
            THEN excluded.last_at ELSE chats.last_at END,
        lid = COALESCE(excluded.lid, chats.lid),
        push_name = COALESCE(excluded.push_name, chats.push_name);
END;

-- A sent message joins its number's chat once it has a number (at accept when forced, when
-- the scheduler binds it otherwise). Writing to the contact reads what it wrote before.
CREATE TRIGGER messages_into_chats AFTER INSERT ON messages
WHEN NEW.instance_id IS NOT NULL
BEGIN
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
        last_at = CASE WHEN excluded.last_at > chats.last_at
            THEN excluded.last_at ELSE chats.last_at END,
        read_at = CASE WHEN excluded.read_at > chats.read_at
            THEN excluded.read_at ELSE chats.read_at END,
        lid = COALESCE(excluded.lid, chats.lid);
END;

CREATE TRIGGER messages_bound_into_chats AFTER UPDATE OF instance_id ON messages
WHEN NEW.instance_id IS NOT NULL AND (OLD.instance_id IS NULL OR OLD.instance_id <> NEW.instance_id)
BEGIN
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
        last_at = CASE WHEN excluded.last_at > chats.last_at
            THEN excluded.last_at ELSE chats.last_at END,
        read_at = CASE WHEN excluded.read_at > chats.read_at
            THEN excluded.read_at ELSE chats.read_at END,
        lid = COALESCE(excluded.lid, chats.lid);
END;

-- The chats of what is already stored.
INSERT INTO chats (instance_id, jid, tenant_id, last_at, read_at)
    SELECT instance_id, chat_jid, tenant_id, MAX(received_at), 0 FROM inbound
    GROUP BY instance_id, chat_jid, tenant_id;
INSERT INTO chats (instance_id, jid, tenant_id, last_at, read_at)
    SELECT instance_id, to_jid, tenant_id, MAX(created_at), MAX(created_at) FROM messages
    WHERE instance_id IN (SELECT id FROM instances) GROUP BY instance_id, to_jid, tenant_id
    ON CONFLICT (instance_id, jid) DO UPDATE SET
        last_at = CASE WHEN excluded.last_at > chats.last_at
            THEN excluded.last_at ELSE chats.last_at END,
        read_at = excluded.read_at;

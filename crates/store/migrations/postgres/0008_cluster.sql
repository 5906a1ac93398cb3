-- Several nodes on one database (src/cluster.rs): node heartbeats, one lease per number, role
-- leases, and which node has claimed a queued send. Times are the database's clock in Unix
-- milliseconds (bz_now_ms), so that nodes with skewed clocks agree on expiry.

CREATE FUNCTION bz_now_ms() RETURNS BIGINT LANGUAGE sql VOLATILE AS
$$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT $$;

-- One row per running gateway process; a restarted process is a new node.
CREATE TABLE nodes (
    id           TEXT COLLATE "C" PRIMARY KEY,
    url          TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

-- The node that holds the number's WhatsApp connection, until lease_until. Nobody else may
-- connect the number before the lease has expired.
ALTER TABLE instances ADD COLUMN lease_node TEXT COLLATE "C";
ALTER TABLE instances ADD COLUMN lease_until BIGINT;
CREATE INDEX instances_by_lease_node ON instances (lease_node) WHERE lease_node IS NOT NULL;

-- Jobs that one node at a time runs (the webhook sender), by name.
CREATE TABLE roles (
    name        TEXT COLLATE "C" PRIMARY KEY,
    node_id     TEXT COLLATE "C" NOT NULL,
    lease_until BIGINT NOT NULL
);

-- The node that has taken a queued send into its scheduler; NULL while nobody has. A claim
-- of a node that stopped heartbeating may be taken over.
ALTER TABLE messages ADD COLUMN claimed_by TEXT COLLATE "C";
